import { domainError } from "../kernel/errors.js";
import type { SessionCursor } from "./ports.js";

/**
 * ListSessions page tokens: base64url JSON of the last session's position (updated_at in
 * milliseconds, session id) and the corpus filter it was issued for. Tokens carry no tenant:
 * every query is scoped by the caller's tenant, so a forged token pages only through the
 * caller's own sessions.
 */
export function encodeSessionToken(cursor: SessionCursor, corpusId: string): string {
  return Buffer.from(JSON.stringify({ u: cursor.updatedAt.getTime(), s: cursor.sessionId, c: corpusId }), "utf8").toString("base64url");
}

/** Decodes a token for the same filter; "" → undefined; anything else → INVALID_ARGUMENT INVALID_CURSOR. */
export function decodeSessionToken(token: string, corpusId: string): SessionCursor | undefined {
  if (token === "") return undefined;
  let parsed: { u?: unknown; s?: unknown; c?: unknown } | undefined;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  if (!parsed || typeof parsed.u !== "number" || !Number.isFinite(parsed.u) || typeof parsed.s !== "string" || typeof parsed.c !== "string") {
    throw domainError("INVALID_CURSOR", "page_token is not a token this API issued; start again with an empty page_token");
  }
  if (parsed.c !== corpusId) throw domainError("INVALID_CURSOR", "page_token was issued for another corpus_id filter; use the same filter or start again");
  return { updatedAt: new Date(parsed.u), sessionId: parsed.s };
}
