import type { HistoryMessage } from "../providers/ports.js";
import type { MessageRecord } from "./session-records.js";

/** Bounds of the history given to the model. */
export interface HistoryBounds {
  /** Most earlier turns (a turn is a question and its answer): 2 × turns messages (NEXUS_AGENT_HISTORY_TURNS). */
  turns: number;
  /** Most characters of history in total (NEXUS_AGENT_HISTORY_CHARS). */
  chars: number;
}

/**
 * The history the model sees: the session's most recent messages, newest kept, at most
 * `2 × turns` of them and at most `chars` characters in total (a message that would cross
 * the budget ends the history, so no message is cut in half). Oldest first.
 */
export function boundedHistory(messages: readonly MessageRecord[], bounds: HistoryBounds): HistoryMessage[] {
  const out: HistoryMessage[] = [];
  let chars = 0;
  for (let i = messages.length - 1; i >= 0 && out.length < bounds.turns * 2; i--) {
    const m = messages[i]!;
    const length = [...m.text].length;
    if (chars + length > bounds.chars) break;
    chars += length;
    out.push({ role: m.role, text: m.text });
  }
  return out.reverse();
}
