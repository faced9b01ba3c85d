import { createHash } from "node:crypto";
import { domainError } from "../../kernel/errors.js";

/**
 * Opaque page tokens: base64url JSON of a position, bound to the filters it was issued with
 * (a short hash), so a token reused with other filters fails with INVALID_CURSOR instead of
 * silently skipping rows. Tokens carry no tenant: every query is scoped by the caller's tenant
 * anyway, so a forged token can only page through the caller's own rows.
 */

function filterHash(filters: string): string {
  return createHash("sha256").update(filters).digest("base64url").slice(0, 12);
}

/** Encodes a position (`after`) for the given filters. */
export function encodePageToken(after: string, filters: string): string {
  return Buffer.from(JSON.stringify({ a: after, f: filterHash(filters) }), "utf8").toString("base64url");
}

/**
 * Decodes a token issued by {@link encodePageToken} for the same filters; empty → undefined.
 * Anything else fails with INVALID_ARGUMENT reason INVALID_CURSOR.
 */
export function decodePageToken(token: string, filters: string): string | undefined {
  if (token === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const p = parsed as { a?: unknown; f?: unknown } | undefined;
  if (!p || typeof p.a !== "string" || typeof p.f !== "string") {
    throw domainError("INVALID_CURSOR", "page_token is not a token this API issued; start again with an empty page_token");
  }
  if (p.f !== filterHash(filters)) {
    throw domainError("INVALID_CURSOR", "page_token was issued for other filters; use the same filters or start again");
  }
  return p.a;
}

/** Decodes a token whose position is an unsigned integer sequence. */
export function decodeSeqToken(token: string, filters: string): bigint | undefined {
  const after = decodePageToken(token, filters);
  if (after === undefined) return undefined;
  if (!/^\d{1,19}$/.test(after)) throw domainError("INVALID_CURSOR", "page_token is malformed; start again with an empty page_token");
  return BigInt(after);
}
