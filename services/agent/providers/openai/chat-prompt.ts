import type { CitationDraft, HistoryMessage, Passage, ToolResultForModel } from "../ports.js";

/** One Chat Completions message. */
export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** The instructions every openai run starts with. */
export const SYSTEM_INSTRUCTIONS = [
  "You are Nexus, an assistant that answers questions from the numbered passages below and from nothing else.",
  "After each statement, cite the passages it relies on with their numbers in square brackets, e.g. [1] or [2][3].",
  "If the passages do not contain the answer, say that you don't know. Be concise.",
].join(" ");

/**
 * The messages of a run: the instructions with the passages numbered [1], [2], … (file name
 * and text) and the results of the tools the request called, then the session's bounded history, then
 * the question.
 */
export function chatMessages(
  question: string,
  history: readonly HistoryMessage[],
  passages: readonly Passage[],
  toolResults: readonly ToolResultForModel[] = [],
): ChatMessage[] {
  const sources =
    passages.length === 0
      ? "(no passages were retrieved)"
      : passages.map((p, i) => `[${i + 1}] (${p.filename || p.documentId})\n${p.text}`).join("\n\n");
  const tools = toolResults.length === 0 ? "" : `\n\nTool results:\n\n${toolResults.map((t) => `${t.name}: ${t.result}`).join("\n")}`;
  return [
    { role: "system", content: `${SYSTEM_INSTRUCTIONS}\n\nPassages:\n\n${sources}${tools}` },
    ...history.map((m): ChatMessage => ({ role: m.role, content: m.text })),
    { role: "user", content: question },
  ];
}

/**
 * The passages an answer cites through its [n] markers, in order of first mention; each
 * citation covers the whole passage (a model does not give finer spans). Markers naming no
 * passage are ignored.
 */
export function citationsFromMarkers(answer: string, passages: readonly Passage[]): CitationDraft[] {
  const out: CitationDraft[] = [];
  const seen = new Set<number>();
  for (const m of answer.matchAll(/\[(\d{1,3})\]/g)) {
    const index = Number(m[1]) - 1;
    const p = passages[index];
    if (p === undefined || seen.has(index)) continue;
    seen.add(index);
    out.push({ passage: index, start: 0, end: [...p.text].length });
  }
  return out;
}
