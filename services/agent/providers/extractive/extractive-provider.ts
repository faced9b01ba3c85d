import { domainError } from "../../../kernel/errors.js";
import type { GenerationChunk, GenerationRequest, ModelProvider } from "../ports.js";
import { type ComposeOptions, composeExtractiveAnswer } from "./extractive-composer.js";

/** The only model of the extractive provider. */
export const EXTRACTIVE_MODEL = "extractive-v1";

/** Splits text into words, each with the blanks that follow it (their concatenation is the text). */
export function wordsOf(text: string): string[] {
  return text.match(/\s*\S+\s*/g) ?? (text ? [text] : []);
}

/**
 * The `extractive` provider: answers offline and deterministically by quoting the best
 * sentences of the retrieved passages (see composeExtractiveAnswer), streamed word by word,
 * each sentence cited with its exact span; "I don't know" when nothing relevant was
 * retrieved. It is how `nexus dev` answers with no network. Usage is counted in characters
 * (input: question and passages; output: the answer), flagged as estimated.
 */
export function createExtractiveProvider(options: ComposeOptions = {}): ModelProvider {
  return {
    name: "extractive",
    defaultModel: EXTRACTIVE_MODEL,
    telemetryName: "nexus.extractive",
    remote: false,
    rejectModel(model) {
      return model === EXTRACTIVE_MODEL ? undefined : `the extractive provider has one model, ${EXTRACTIVE_MODEL}`;
    },
    async *generate(request: GenerationRequest): AsyncGenerator<GenerationChunk> {
      const answer = request.cpu.measure(() => composeExtractiveAnswer(request.question, request.passages, options));
      const text = answer.text + toolResultsText(request.toolResults ?? []);
      const words = request.cpu.measure(() => wordsOf(text));
      for (const text of words) {
        if (request.signal.aborted) throw abortError(request.signal);
        yield { kind: "delta", text };
      }
      const inputChars =
        [...request.question].length +
        request.passages.reduce((n, p) => n + [...p.text].length, 0) +
        (request.toolResults ?? []).reduce((n, r) => n + [...r.result].length, 0);
      yield {
        kind: "end",
        citations: answer.citations,
        usage: { inputTokens: inputChars, outputTokens: [...text].length, estimated: true, gpuSeconds: 0 },
        finishReason: answer.grounded ? "stop" : "no_answer",
        responseModel: EXTRACTIVE_MODEL,
      };
    },
  };
}

/** Longest tool result quoted in an answer, in code points (longer ones end with "…"). */
export const MAX_QUOTED_TOOL_RESULT = 1000;

/**
 * The tool results of the run as the end of an extractive answer: after the quoted passages,
 * "Tool results:" and one line per call, `- module.tool: <output JSON or {"error": …}>`
 * (empty when the run called no tool). The extractive provider cannot reason about them, so
 * it quotes them, as it quotes passages.
 */
export function toolResultsText(results: readonly { name: string; result: string }[]): string {
  if (results.length === 0) return "";
  const lines = results.map((r) => {
    const cps = [...r.result];
    const quoted = cps.length > MAX_QUOTED_TOOL_RESULT ? `${cps.slice(0, MAX_QUOTED_TOOL_RESULT).join("")}…` : r.result;
    return `- ${r.name}: ${quoted}`;
  });
  return `\n\nTool results:\n${lines.join("\n")}`;
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? domainError("CANCELLED", "the run was cancelled");
}
