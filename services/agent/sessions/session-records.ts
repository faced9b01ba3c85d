/** A session as stored. */
export interface SessionRecord {
  tenantId: string;
  sessionId: string;
  /** Corpus of the session's most recent run. */
  corpusId: string;
  title: string;
  messageCount: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A citation as stored with an assistant message (the API's Citation fields). */
export interface StoredCitation {
  documentId: string;
  chunkOrdinal: number;
  charStart: number;
  charEnd: number;
  score: number;
  filename: string;
  quote: string;
}

/** A message as stored. */
export interface MessageRecord {
  messageId: string;
  sessionId: string;
  role: "user" | "assistant";
  text: string;
  citations: StoredCitation[];
  requestId: string;
  createdAt: Date;
}

/** Longest session title: the beginning of the first question. */
export const TITLE_LENGTH = 80;

/** The title of a session started by `question`: its first line, at most 80 characters. */
export function sessionTitle(question: string): string {
  const line = question.trim().split("\n")[0]?.trim() ?? "";
  const chars = [...line];
  return chars.length <= TITLE_LENGTH ? line : `${chars.slice(0, TITLE_LENGTH - 1).join("")}…`;
}
