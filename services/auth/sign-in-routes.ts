import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import { CSRF_COOKIE, csrfTokenOf } from "../kernel/authz/console-session.js";
import { errorReason } from "../kernel/errors.js";
import type { NodeRequest, NodeResponse } from "../kernel/server/node-http.js";
import { plain } from "../kernel/server/node-http.js";
import type { HttpRoute } from "../kernel/server/service-module.js";
import { SESSION_PREFIX, type SignIn } from "./sign-in.js";

/** The cookie that carries a browser's session token. */
export const SESSION_COOKIE = "nexus_session";

/** Where the browser lands after the provider (register `<Nexus URL>/auth/oidc/callback` at the provider). */
export const CALLBACK_PATH = "/auth/oidc/callback";

function requestUrl(req: NodeRequest): URL {
  const host = String(req.headers["x-forwarded-host"] ?? req.headers.host ?? req.headers[":authority"] ?? "localhost");
  const proto =
    String(req.headers["x-forwarded-proto"] ?? "http")
      .split(",")[0]
      ?.trim() || "http";
  return new URL(req.url ?? "/", `${proto}://${host.split(",")[0]?.trim()}`);
}

function sessionTokenOf(req: NodeRequest): string | undefined {
  const auth = req.headers.authorization;
  const bearer = typeof auth === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
  if (bearer?.startsWith(SESSION_PREFIX)) return bearer;
  const cookies = String(req.headers.cookie ?? "").split(";");
  for (const c of cookies) {
    const [name, ...rest] = c.trim().split("=");
    if (name === SESSION_COOKIE) return rest.join("=");
  }
  return undefined;
}

/** Sets several cookies at once. */
function cookieHeader(res: NodeResponse, cookies: string[]): void {
  (res as unknown as { setHeader(name: string, value: string[]): void }).setHeader("set-cookie", cookies);
}

function refuse(res: NodeResponse, err: unknown, logger: Logger): void {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Internal || ce.code === Code.Unknown) logger.error({ err }, "sign-in failed");
  const status = codeToHttpStatus(ce.code);
  plain(res).writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  plain(res).end(JSON.stringify({ code: Code[ce.code], reason: errorReason(ce) ?? "INTERNAL", message: ce.rawMessage }));
}

/**
 * The sign-in endpoints of the auth service (plain HTTP, browsers follow them):
 *
 * - `GET /auth/oidc/login?tenant=<slug>&redirect_uri=<where to return>` → 302 to the tenant's
 *   provider (authorization code + PKCE, fresh state and nonce);
 * - `GET /auth/oidc/callback?code&state` (the provider's redirect) → sets the `nexus_session`
 *   cookie (HttpOnly, SameSite=Lax, Secure on https) and 303 to `redirect_uri`; the session token
 *   also authenticates RPCs as `Authorization: Bearer nxss_…`;
 * - `POST /auth/oidc/logout` with the session (cookie or Bearer) → ends it, clears the cookie;
 * - `GET /auth/oidc/provider?tenant=<slug>` → `{"name": "<provider host>"}` or 404 (the console's
 *   "Sign in with …").
 *
 * Refusals are JSON `{code, reason, message}` with the HTTP status of the code.
 */
export function signInRoutes(signIn: SignIn, logger: Logger): HttpRoute[] {
  return [
    {
      // What the console shows on its sign-in page: `{"name": "<provider host>"}`, or 404.
      path: "/auth/oidc/provider",
      methods: ["GET"],
      async handle(req, res) {
        try {
          const provider = await signIn.providerFor(requestUrl(req).searchParams.get("tenant") ?? "");
          plain(res).writeHead(provider ? 200 : 404, { "content-type": "application/json", "cache-control": "no-store" });
          plain(res).end(JSON.stringify(provider ?? { reason: "NOT_FOUND", message: "this tenant offers no single sign-on" }));
        } catch (err) {
          refuse(res, err, logger);
        }
      },
    },
    {
      path: "/auth/oidc/login",
      methods: ["GET"],
      async handle(req, res) {
        try {
          const url = requestUrl(req);
          const location = await signIn.start({
            tenantSlug: url.searchParams.get("tenant") ?? "",
            returnTo: url.searchParams.get("redirect_uri") ?? "",
            origin: url.origin,
          });
          plain(res).writeHead(302, { location, "cache-control": "no-store" });
          plain(res).end();
        } catch (err) {
          refuse(res, err, logger);
        }
      },
    },
    {
      path: CALLBACK_PATH,
      methods: ["GET"],
      async handle(req, res) {
        try {
          const url = requestUrl(req);
          const done = await signIn.finish({
            state: url.searchParams.get("state") ?? "",
            code: url.searchParams.get("code") ?? "",
            error: url.searchParams.get("error") ?? "",
          });
          const maxAge = Math.max(0, Math.floor((done.expiresAt.getTime() - Date.now()) / 1000));
          const secure = url.protocol === "https:" ? "; Secure" : "";
          // The web console uses the session like its own (docs/console.md): the readable CSRF
          // cookie the page echoes in x-nexus-csrf on every cookie-authenticated call.
          cookieHeader(res, [
            `${SESSION_COOKIE}=${done.token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`,
            `${CSRF_COOKIE}=${csrfTokenOf(done.token)}; Path=/; SameSite=Lax; Max-Age=${maxAge}${secure}`,
          ]);
          plain(res).writeHead(303, { location: done.returnTo, "cache-control": "no-store" });
          plain(res).end();
        } catch (err) {
          refuse(res, err, logger);
        }
      },
    },
    {
      path: "/auth/oidc/logout",
      methods: ["POST"],
      async handle(req, res) {
        try {
          const token = sessionTokenOf(req);
          const { ended } = token ? await signIn.signOut(token) : { ended: false };
          cookieHeader(res, [
            `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0`,
            `${CSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0`,
          ]);
          plain(res).writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
          plain(res).end(JSON.stringify({ ended }));
        } catch (err) {
          refuse(res, err, logger);
        }
      },
    },
  ];
}
