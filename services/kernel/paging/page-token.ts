import { createHash } from "node:crypto";
import { domainError } from "../errors.js";

/**
 * How one list API's position (where a page ended) travels inside a token: `write` turns it
 * into JSON, `read` turns JSON back into a position, or undefined when the JSON is not one.
 */
export interface PagePosition<P> {
  write(position: P): unknown;
  read(json: unknown): P | undefined;
}

/** Encodes and decodes the page tokens of one list API (see {@link pageTokens}). */
export interface PageTokens<P> {
  /** A token continuing after `position`, bound to `query` (any JSON value: tenant, filters). */
  encode(position: P, query: unknown): string;
  /**
   * The position a token continues from; "" (the first page) → undefined. A token that is not
   * ours, was altered, or was issued for another query fails with INVALID_ARGUMENT reason
   * INVALID_CURSOR (ErrorInfo metadata `field: page_token`).
   */
  decode(token: string, query: unknown): P | undefined;
}

/** The envelope version; a token of another version is refused, so the format can change. */
const VERSION = 1;

/**
 * The page tokens of a list API: opaque base64url JSON `{v, p, q}` holding the version, the
 * position and a short SHA-256 of the query the token was issued for. Reusing a token with
 * other filters (or another tenant) fails with INVALID_CURSOR instead of silently returning a
 * wrong page. Tokens are validated, not signed: a signature would need a key shared by every
 * replica, and a forged position gains nothing, since every list query is scoped by the
 * caller's own tenant anyway.
 */
export function pageTokens<P>(position: PagePosition<P>): PageTokens<P> {
  return {
    encode(p, query) {
      return Buffer.from(JSON.stringify({ v: VERSION, p: position.write(p), q: queryHash(query) }), "utf8").toString("base64url");
    },
    decode(token, query) {
      if (token === "") return undefined;
      let parsed: { v?: unknown; p?: unknown; q?: unknown } | undefined;
      try {
        parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as typeof parsed;
      } catch {
        parsed = undefined;
      }
      const p =
        parsed !== null && typeof parsed === "object" && parsed.v === VERSION && typeof parsed.q === "string"
          ? position.read(parsed.p)
          : undefined;
      if (p === undefined) {
        throw domainError("INVALID_CURSOR", "page_token is not a token this API issued; start again with an empty page_token", {
          field: "page_token",
        });
      }
      if (parsed!.q !== queryHash(query)) {
        throw domainError(
          "INVALID_CURSOR",
          "page_token was issued for other filters; use the same filters or start again with an empty page_token",
          {
            field: "page_token",
          },
        );
      }
      return p;
    },
  };
}

function queryHash(query: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(query ?? null))
    .digest("base64url")
    .slice(0, 16);
}

/**
 * A position that is a row sequence (a bigserial column): an unsigned integer of up to 19
 * digits, carried as a decimal string so no precision is lost.
 */
export const sequencePosition: PagePosition<bigint> = {
  write: (seq) => seq.toString(),
  read: (json) => (typeof json === "string" && /^\d{1,19}$/.test(json) ? BigInt(json) : undefined),
};

/** A position that is a non-negative safe integer (an in-memory sequence, an audit sequence). */
export const counterPosition: PagePosition<number> = {
  write: (n) => n,
  read: (json) => (typeof json === "number" && Number.isSafeInteger(json) && json >= 0 ? json : undefined),
};

/**
 * A keyset position `(time, id)` — the sort key of lists ordered by a timestamp with the id
 * breaking ties — under the caller's own field names, e.g. `keysetPosition("createdAt", "id")`.
 * The time travels as epoch milliseconds.
 */
export function keysetPosition<T extends string, I extends string>(
  timeField: T,
  idField: I,
): PagePosition<Record<T, Date> & Record<I, string>> {
  return {
    write: (p) => [p[timeField].getTime(), p[idField]],
    read: (json) => {
      if (!Array.isArray(json) || json.length !== 2) return undefined;
      const [ms, id] = json as unknown[];
      if (typeof ms !== "number" || !Number.isFinite(ms) || typeof id !== "string") return undefined;
      const at = new Date(ms);
      if (Number.isNaN(at.getTime())) return undefined;
      return { [timeField]: at, [idField]: id } as Record<T, Date> & Record<I, string>;
    },
  };
}
