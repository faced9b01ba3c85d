/**
 * OpenTelemetry GenAI semantic-convention attribute names used by the agent's spans (see
 * https://opentelemetry.io/docs/specs/semconv/gen-ai/). Spelled out here because the
 * conventions are still "development" status and moving between packages; these are the
 * names OTLP backends recognise today. `gen_ai.system` is the older spelling of
 * `gen_ai.provider.name`; both are set so older and newer backends understand the spans.
 */
export const GEN_AI = Object.freeze({
  OPERATION_NAME: "gen_ai.operation.name",
  PROVIDER_NAME: "gen_ai.provider.name",
  SYSTEM: "gen_ai.system",
  REQUEST_MODEL: "gen_ai.request.model",
  REQUEST_TEMPERATURE: "gen_ai.request.temperature",
  REQUEST_MAX_TOKENS: "gen_ai.request.max_tokens",
  REQUEST_STREAM: "gen_ai.request.stream",
  RESPONSE_MODEL: "gen_ai.response.model",
  RESPONSE_FINISH_REASONS: "gen_ai.response.finish_reasons",
  RESPONSE_TIME_TO_FIRST_CHUNK: "gen_ai.response.time_to_first_chunk",
  USAGE_INPUT_TOKENS: "gen_ai.usage.input_tokens",
  USAGE_OUTPUT_TOKENS: "gen_ai.usage.output_tokens",
  CONVERSATION_ID: "gen_ai.conversation.id",
  DATA_SOURCE_ID: "gen_ai.data_source.id",
  AGENT_NAME: "gen_ai.agent.name",
  TOOL_NAME: "gen_ai.tool.name",
  TOOL_CALL_ID: "gen_ai.tool.call.id",
  ERROR_TYPE: "error.type",
});

/** `gen_ai.operation.name` values the agent emits. */
export const GEN_AI_OPERATION = Object.freeze({
  INVOKE_AGENT: "invoke_agent",
  RETRIEVAL: "retrieval",
  CHAT: "chat",
  EXECUTE_TOOL: "execute_tool",
});
