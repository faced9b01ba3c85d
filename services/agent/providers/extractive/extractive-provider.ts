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
      const words = request.cpu.measure(() => wordsOf(answer.text));
      for (const text of words) {
        if (request.signal.aborted) throw abortError(request.signal);
        yield { kind: "delta", text };
      }
      const inputChars = [...request.question].length + request.passages.reduce((n, p) => n + [...p.text].length, 0);
      yield {
        kind: "end",
        citations: answer.citations,
        usage: { inputTokens: inputChars, outputTokens: [...answer.text].length, estimated: true, gpuSeconds: 0 },
        finishReason: answer.grounded ? "stop" : "no_answer",
        responseModel: EXTRACTIVE_MODEL,
      };
    },
  };
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? domainError("CANCELLED", "the run was cancelled");
}
