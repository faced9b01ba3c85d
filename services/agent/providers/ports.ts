import type { CpuMeter } from "../run/cpu-meter.js";

/** A retrieved passage as the model sees it (numbered [1], [2], … in retrieval order). */
export interface Passage {
  documentId: string;
  chunkOrdinal: number;
  /** Offsets of the chunk in its document's extracted text, in Unicode code points. */
  charStart: number;
  charEnd: number;
  text: string;
  /** Fused retrieval score (higher is better). */
  score: number;
  filename: string;
}

/** An earlier message of the session, oldest first. */
export interface HistoryMessage {
  role: "user" | "assistant";
  text: string;
}

/** What a provider generates from. */
export interface GenerationRequest {
  question: string;
  /** Bounded history of the session (last N turns within the character budget). */
  history: readonly HistoryMessage[];
  /** Retrieved passages, best first. */
  passages: readonly Passage[];
  /** The model (resolved: request, corpus or provider default). */
  model: string;
  temperature?: number;
  maxTokens?: number;
  /** Aborts the model call at once (client cancel, CancelRun, deadline, shutdown). */
  signal: AbortSignal;
  /** Where the provider reports the CPU time of its own synchronous work. */
  cpu: CpuMeter;
  /** Results of the tool calls the request named, made before generation (empty: none). */
  toolResults?: readonly ToolResultForModel[];
  /** Tools the model may choose (providers with tool calling); empty or absent: none. */
  tools?: readonly ModelTool[];
  /**
   * Makes a call the model chose and returns what the model is told (the output's JSON, or
   * `{"error": ...}`): a tool failure is the model's to handle, never the run's. Set with `tools`.
   */
  callTool?: (name: string, argumentsJson: string) => Promise<string>;
}

/** A tool the model may call, as Chat Completions describes a function. */
export interface ModelTool {
  /** `<module>__<tool>` (function names allow [A-Za-z0-9_-]). */
  name: string;
  description: string;
  /** JSON Schema of the arguments (an object). */
  parameters: Record<string, unknown>;
}

/** A tool call made for the run and its result, as the model is given it. */
export interface ToolResultForModel {
  /** "module.tool". */
  name: string;
  /** The output's JSON, or `{"error": ...}`. */
  result: string;
}

/**
 * A cited span: `passage` indexes {@link GenerationRequest.passages}; `start`/`end` are code
 * point offsets inside that passage's text (the whole passage when the provider cannot be
 * more precise).
 */
export interface CitationDraft {
  passage: number;
  start: number;
  end: number;
}

/** What the model used. */
export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
  /** True when the provider reported no token counts and characters were counted instead. */
  estimated: boolean;
  /** GPU seconds the provider reported (0 when it reports none). */
  gpuSeconds: number;
}

/** One piece of a generation: text as it comes, then exactly one `end`. */
export type GenerationChunk =
  | { kind: "delta"; text: string }
  | {
      kind: "end";
      citations: readonly CitationDraft[];
      usage: ModelUsage;
      /** As the provider says, e.g. "stop" or "length". */
      finishReason: string;
      /** The model that answered, when the provider says (else the requested one). */
      responseModel?: string;
    };

/**
 * The model port: one generation, streamed. Implementations: `extractive` (offline,
 * deterministic) and `openai` (any OpenAI-compatible Chat Completions server). Failures are
 * thrown as ConnectErrors (UNAVAILABLE DEPENDENCY_UNAVAILABLE for an unreachable, failing or
 * stalled model; FAILED_PRECONDITION for a request the model server refuses); an abort of
 * `signal` ends the call at once.
 */
export interface ModelProvider {
  /** The name runs use, e.g. "extractive". */
  readonly name: string;
  /** The model used when neither the request nor the corpus names one. */
  readonly defaultModel: string;
  /** `gen_ai.provider.name` of its spans, e.g. "openai". */
  readonly telemetryName: string;
  /** True when calls leave the process (they get a circuit breaker). */
  readonly remote: boolean;
  /** Checks a model name; returns a reason when this provider cannot serve it. */
  rejectModel(model: string): string | undefined;
  generate(request: GenerationRequest): AsyncIterable<GenerationChunk>;
}
