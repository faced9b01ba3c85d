import { createHash } from "node:crypto";
import { domainError } from "../kernel/errors.js";

/** Where a page ended: the last row's sort key. */
export interface PagePosition {
  createdAt: Date;
  id: string;
}

/**
 * Page tokens of ListTenants and ListApiKeys: opaque base64url JSON holding the last row's
 * sort key and a fingerprint of the filters, so a token used with other filters (or forged)
 * fails with INVALID_ARGUMENT reason INVALID_CURSOR instead of returning a wrong page.
 */
export function encodePageToken(position: PagePosition, filters: unknown): string {
  return Buffer.from(JSON.stringify({ c: position.createdAt.toISOString(), i: position.id, f: fingerprint(filters) })).toString("base64url");
}

/** Reads a page token issued for the same filters; "" means the first page (undefined). */
export function decodePageToken(token: string, filters: unknown): PagePosition | undefined {
  if (token === "") return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { c?: unknown; i?: unknown; f?: unknown };
    if (typeof parsed.c !== "string" || typeof parsed.i !== "string" || parsed.f !== fingerprint(filters)) throw new Error("mismatch");
    const createdAt = new Date(parsed.c);
    if (Number.isNaN(createdAt.getTime())) throw new Error("bad date");
    return { createdAt, id: parsed.i };
  } catch {
    throw domainError("INVALID_CURSOR", "page_token is not valid for this request (it belongs to other filters or was altered)", { field: "page_token" });
  }
}

function fingerprint(filters: unknown): string {
  return createHash("sha256").update(JSON.stringify(filters ?? null)).digest("base64url").slice(0, 16);
}
