import { createHash } from "node:crypto";
import { domainError } from "../kernel/errors.js";

/**
 * ListAuditEvents page tokens: base64url JSON of the last sequence returned and a short hash
 * of the chain and filter they were issued for, so a token reused with another filter fails
 * with INVALID_CURSOR instead of silently skipping entries.
 */

function bindingOf(binding: string): string {
  return createHash("sha256").update(binding).digest("base64url").slice(0, 16);
}

/** A token continuing below `sequence` for this binding (chain + filter). */
export function encodeAuditPageToken(sequence: number, binding: string): string {
  return Buffer.from(JSON.stringify({ s: sequence, b: bindingOf(binding) }), "utf8").toString("base64url");
}

/** The sequence a token continues below; undefined for ""; INVALID_CURSOR for anything foreign. */
export function decodeAuditPageToken(token: string, binding: string): number | undefined {
  if (token === "") return undefined;
  let parsed: { s?: unknown; b?: unknown } | undefined;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as typeof parsed;
  } catch {
    parsed = undefined;
  }
  if (!parsed || typeof parsed.s !== "number" || !Number.isSafeInteger(parsed.s) || parsed.s < 1 || typeof parsed.b !== "string") {
    throw domainError("INVALID_CURSOR", "page_token is not a token this API issued; start again with an empty page_token");
  }
  if (parsed.b !== bindingOf(binding)) {
    throw domainError("INVALID_CURSOR", "page_token was issued for another tenant or filter; use the same filter or start again");
  }
  return parsed.s;
}
