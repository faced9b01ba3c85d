import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * Console sessions: what the browser holds after signing in with an API key (docs/console.md).
 *
 * - token: `nxcs_` + 256 random bits (base64url, 43 characters), sent only in the httpOnly
 *   session cookie. Only its SHA-256 is stored (`auth.console_sessions.id`), so a database
 *   dump cannot be replayed, and a session is revoked by deleting its row.
 * - CSRF token: derived from the session token (SHA-256 of a domain-separated string), sent to
 *   the page in a readable cookie and echoed by it in the `x-nexus-csrf` header on every
 *   cookie-authenticated call (double submit, bound to the session: another site can neither
 *   read it nor derive it).
 */

/** Prefix of every console session token. */
export const SESSION_PREFIX = "nxcs_";

const TOKEN = /^nxcs_[A-Za-z0-9_-]{43}$/;
/** An OpenID sign-in session token (services/auth/sign-in.ts), which the console uses alike. */
const SIGN_IN_TOKEN = /^nxss_[0-9a-f-]{36}_[A-Za-z0-9_-]{43}$/;

/** A new random session token. */
export function newSessionToken(): string {
  return `${SESSION_PREFIX}${randomBytes(32).toString("base64url")}`;
}

/** True when `presented` has the shape of a session token (not a key). */
export function isSessionToken(presented: string): boolean {
  return TOKEN.test(presented);
}

/** The stored id of a session: hex SHA-256 of its token. */
export function sessionIdOf(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** The CSRF token that belongs to a session token. */
export function csrfTokenOf(token: string): string {
  return createHash("sha256").update(`nexus-console-csrf\u0000${token}`, "utf8").digest("base64url");
}

/** Whether `presented` is the CSRF token of `token` (constant time). */
export function csrfMatches(token: string, presented: string | null | undefined): boolean {
  if (!presented) return false;
  const expected = Buffer.from(csrfTokenOf(token));
  const actual = Buffer.from(presented);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** The httpOnly cookie holding the session token. */
export const SESSION_COOKIE = "nexus_session";
/** The readable cookie holding the CSRF token (the page copies it into {@link CSRF_HEADER}). */
export const CSRF_COOKIE = "nexus_csrf";
/** The header a cookie-authenticated call must carry: the session's CSRF token. */
export const CSRF_HEADER = "x-nexus-csrf";

/** The value of one cookie in a `Cookie` header, or undefined. */
export function cookieOf(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** True when `presented` has the shape of an OpenID sign-in session token (`nxss_…`). */
export function isSignInSessionToken(presented: string): boolean {
  return SIGN_IN_TOKEN.test(presented);
}

/**
 * The console session a request presents: the session cookie's token when it has the shape of
 * one — an API-key console session (`nxcs_`) or an OpenID sign-in session (`nxss_`), the same
 * cookie for both. `csrf` says whether the request carries the session's CSRF token.
 */
export function presentedSessionOf(header: Headers): { token: string; csrf: boolean } | undefined {
  const token = cookieOf(header.get("cookie"), SESSION_COOKIE);
  if (token === undefined || !(isSessionToken(token) || isSignInSessionToken(token))) return undefined;
  return { token, csrf: csrfMatches(token, header.get(CSRF_HEADER)) };
}
