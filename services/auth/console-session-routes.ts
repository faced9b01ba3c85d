import type { Logger } from "pino";
import { admitAttempt, claimedKeyIdOf, presentedKeyOf } from "../kernel/authz/authentication-gate.js";
import {
  CSRF_COOKIE,
  CSRF_HEADER,
  cookieOf,
  csrfMatches,
  csrfTokenOf,
  isSignInSessionToken,
  SESSION_COOKIE,
} from "../kernel/authz/console-session.js";
import type { HttpRoute, NodeRequest, NodeResponse } from "../kernel/server/index.js";
import { plain, webHeadersOf } from "../kernel/server/index.js";
import type { AuthApplication } from "./auth-application.js";
import type { AuthenticateAttempts } from "./handlers.js";

/** Path of the console's sign-in (POST) and sign-out (DELETE) endpoint. */
export const CONSOLE_SESSION_PATH = "/auth/session";
/** The procedure name sign-in refusals are recorded under in the audit log. */
const SIGN_IN_PROCEDURE = "/console/sign-in";
/** Largest sign-in body: a JSON object with one key. */
const MAX_BODY_BYTES = 4096;

/** Options of {@link consoleSessionRoutes}. */
export interface ConsoleSessionRoutesOptions {
  app: AuthApplication;
  /** How long a session lasts (NEXUS_CONSOLE_SESSION_TTL_SECONDS). */
  ttlMs: number;
  /** Ends an OpenID sign-in session (`nxss_…`), which the console signs out of the same way. */
  endSignInSession?: (token: string) => Promise<unknown>;
  logger: Logger;
  /** The refused-authentication limiter of sign-in attempts, and the client address it and the audit use. */
  attempts: AuthenticateAttempts;
}

function sendJson(res: NodeResponse, status: number, body: unknown, cookies: string[] = []): void {
  const r = res as unknown as { setHeader(name: string, value: string | string[]): void };
  if (cookies.length > 0) r.setHeader("set-cookie", cookies);
  plain(res).writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  plain(res).end(`${JSON.stringify(body)}\n`);
}

/** A refusal in the shape of a Connect error body: `{code, message, reason}`. */
function refuse(res: NodeResponse, status: number, code: string, reason: string, message: string): void {
  sendJson(res, status, { code, reason, message });
}

async function readBody(req: NodeRequest): Promise<string | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Cookies are Secure when the browser reached Nexus over TLS (directly or through a proxy that says so). */
function overTls(req: NodeRequest, headers: Headers): boolean {
  const proto = headers.get("x-forwarded-proto")?.split(",")[0]?.trim();
  return proto === "https" || (req.socket as { encrypted?: boolean }).encrypted === true;
}

function cookies(req: NodeRequest, headers: Headers, token: string, maxAgeSeconds: number): string[] {
  const secure = overTls(req, headers) ? "; Secure" : "";
  const value = (name: string, v: string, httpOnly: boolean) =>
    `${name}=${v}; Path=/; Max-Age=${maxAgeSeconds}; SameSite=Strict${httpOnly ? "; HttpOnly" : ""}${secure}`;
  return [value(SESSION_COOKIE, token, true), value(CSRF_COOKIE, token === "" ? "" : csrfTokenOf(token), false)];
}

/** The request comes from this origin (or says nothing about its origin, like curl). */
function sameOrigin(headers: Headers): boolean {
  const origin = headers.get("origin");
  if (origin === null) return true;
  const host = headers.get("x-forwarded-host") ?? headers.get("host") ?? headers.get(":authority");
  try {
    return host !== null && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/**
 * The console's sign-in endpoint (docs/console.md), served by the auth service:
 *
 * - `POST /auth/session` with `{"apiKey": "nxs_…"}` (or `Authorization: Bearer nxs_…`)
 *   authenticates the key and answers 200 with the principal, setting the httpOnly
 *   `nexus_session` cookie and the readable `nexus_csrf` cookie (SameSite=Strict, Secure
 *   over TLS). A refused key answers 401/403 with the refusal's reason and message.
 * - `DELETE /auth/session` (with the CSRF header) ends the session and clears both cookies.
 *
 * Only JSON from the same origin is accepted, so another site cannot sign a browser in to an
 * account of its choosing (login CSRF).
 */
export function consoleSessionRoutes(options: ConsoleSessionRoutesOptions): HttpRoute[] {
  const { app, ttlMs, logger, attempts } = options;
  const signIn = async (req: NodeRequest, res: NodeResponse) => {
    const headers = webHeadersOf(req.headers);
    if (!sameOrigin(headers))
      return refuse(res, 403, "permission_denied", "CSRF_TOKEN_INVALID", "sign-in is only accepted from the console's own origin");
    if (!(headers.get("content-type") ?? "").toLowerCase().startsWith("application/json")) {
      return refuse(res, 415, "invalid_argument", "UNSUPPORTED_MEDIA_TYPE", 'send the key as JSON: {"apiKey": "nxs_…"}');
    }
    const body = await readBody(req);
    if (body === undefined) return refuse(res, 413, "resource_exhausted", "REQUEST_TOO_LARGE", "the sign-in request is too large");
    let apiKey = presentedKeyOf(headers);
    if (apiKey === undefined) {
      try {
        const parsed = JSON.parse(body || "{}") as { apiKey?: unknown };
        if (typeof parsed.apiKey === "string") apiKey = parsed.apiKey.trim();
      } catch {
        return refuse(res, 400, "invalid_argument", "INVALID_ARGUMENT", 'the body is not JSON; send {"apiKey": "nxs_…"}');
      }
    }
    if (!apiKey) return refuse(res, 400, "invalid_argument", "INVALID_ARGUMENT", "enter an API key (it starts with nxs_)");
    if (apiKey.length > 256) return refuse(res, 401, "unauthenticated", "AUTH_UNAUTHORIZED", "that is not a Nexus API key");
    // The refused-authentication limiter, as at the gate (docs/security.md); the same address is
    // the one audited (X-Forwarded-For only from a trusted proxy).
    const clientAddress = attempts.clientAddress(req.socket?.remoteAddress, headers);
    const keyId = claimedKeyIdOf(apiKey);
    const throttled = await admitAttempt(attempts.limiter, attempts.recorder, {
      clientAddress,
      keyId,
      presented: apiKey,
      procedure: SIGN_IN_PROCEDURE,
    });
    if (throttled) {
      const r = res as unknown as { setHeader(name: string, value: string): void };
      for (const [name, value] of throttled.metadata) r.setHeader(name, value);
      return refuse(res, 429, "resource_exhausted", "AUTH_RATE_LIMITED", throttled.rawMessage);
    }
    const result = await app.signInConsole(apiKey, ttlMs, {
      procedure: SIGN_IN_PROCEDURE,
      ...(clientAddress ? { peerAddress: clientAddress } : {}),
    });
    if (result.kind === "refused") attempts.limiter.refused(clientAddress, keyId);
    else attempts.limiter.succeeded(apiKey);
    if (result.kind === "refused") {
      const status = result.reason === "TENANT_SUSPENDED" ? 403 : 401;
      return refuse(res, status, status === 403 ? "permission_denied" : "unauthenticated", result.reason, result.message);
    }
    logger.info({ key_id: result.principal.keyId }, "console sign-in");
    sendJson(
      res,
      200,
      { expiresAt: result.expiresAt.toISOString(), keyId: result.principal.keyId, kind: result.principal.kind },
      cookies(req, headers, result.token, Math.floor(ttlMs / 1000)),
    );
  };
  const signOut = async (req: NodeRequest, res: NodeResponse) => {
    const headers = webHeadersOf(req.headers);
    const token = cookieOf(headers.get("cookie"), SESSION_COOKIE);
    if (token !== undefined && token !== "") {
      if (!csrfMatches(token, headers.get(CSRF_HEADER))) {
        return refuse(res, 403, "permission_denied", "CSRF_TOKEN_INVALID", `sign-out needs the session's CSRF token in ${CSRF_HEADER}`);
      }
      if (isSignInSessionToken(token)) await options.endSignInSession?.(token);
      else await app.signOutConsole(token);
    }
    sendJson(res, 200, { signedOut: true }, cookies(req, headers, "", 0));
  };
  return [
    {
      path: CONSOLE_SESSION_PATH,
      methods: ["POST", "DELETE"],
      handle: (req, res) => (req.method === "POST" ? signIn(req, res) : signOut(req, res)),
    },
  ];
}
