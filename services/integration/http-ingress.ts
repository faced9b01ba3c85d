import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { type NodeRequest, type NodeResponse, plain } from "../kernel/server/node-http.js";
import type { HttpRoute } from "../kernel/server/service-module.js";
import { store } from "./adapters/postgres.js";
import type { AppKeyCache } from "./app-key-cache.js";
import { appKeyDigest } from "./domain/app-key.js";
import type { IntegrationApplication } from "./integration-application.js";

const HTTP_STATUS: Record<number, number> = { 3: 400, 5: 404, 6: 409, 7: 403, 8: 429, 9: 412, 14: 503, 16: 401 };

function send(res: NodeResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  const r = plain(res);
  r.writeHead(status, { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(text)) });
  r.end(text);
}

async function readJson(req: NodeRequest, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw Object.assign(new Error(`the body is larger than ${limit} bytes`), { status: 413 });
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw Object.assign(new Error("the body is not JSON"), { status: 400 });
  }
}

function header(req: NodeRequest, name: string): string {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) ?? "";
}

/**
 * The drop-in HTTP endpoints: `POST /ingress` (X-API-Key = app key; body = the payload, or an
 * encryption envelope; optional `X-Message-Id` for dedupe) and `POST /execute/<workflow id>`
 * (X-API-Key = the key of the app the workflow reads from). Answers `202 {"message_id", "duplicate"}`,
 * errors as `{"code", "reason", "message"}` with the matching HTTP status.
 */
export function ingressRoutes(o: {
  db: Database;
  app: IntegrationApplication;
  apps: AppKeyCache;
  logger: Logger;
  maxBytes: number;
}): HttpRoute[] {
  async function authenticate(req: NodeRequest) {
    const key = header(req, "x-api-key");
    const app = key ? await o.apps.app(appKeyDigest(key)) : undefined;
    if (!app) throw Object.assign(new Error("X-API-Key is missing or not a valid app key"), { status: 401, reason: "AUTH_UNAUTHORIZED" });
    return app;
  }
  async function run(res: NodeResponse, fn: () => Promise<{ messageId: string; duplicate: boolean }>) {
    try {
      const r = await fn();
      send(res, 202, { message_id: r.messageId, duplicate: r.duplicate });
    } catch (err) {
      const status = (err as { status?: number }).status;
      if (status) {
        send(res, status, {
          code: status === 401 ? "unauthenticated" : "invalid_argument",
          reason: (err as { reason?: string }).reason ?? "INVALID_ARGUMENT",
          message: (err as Error).message,
        });
        return;
      }
      if (err instanceof ConnectError) {
        // A full ingress queue (or the bus down) says when to come back, as Retry-After.
        const retryAfter = err.metadata.get("retry-after");
        send(
          res,
          HTTP_STATUS[err.code] ?? 500,
          { code: err.code, reason: errorReason(err) ?? "", message: err.rawMessage },
          retryAfter ? { "retry-after": retryAfter } : {},
        );
        return;
      }
      o.logger.error({ err }, "ingress failed");
      send(res, 503, { code: "unavailable", reason: "DEPENDENCY_UNAVAILABLE", message: "the message could not be stored; retry" });
    }
  }
  return [
    {
      path: "/ingress",
      methods: ["POST"],
      handle: (req, res) =>
        run(res, async () => {
          const app = await authenticate(req);
          const body = await readJson(req, o.maxBytes);
          return o.app.ingest(app, body, header(req, "x-message-id"), `app:${app.id}`);
        }),
    },
    {
      path: "/execute",
      prefix: true,
      methods: ["POST"],
      handle: (req, res) =>
        run(res, async () => {
          const app = await authenticate(req);
          const id = decodeURIComponent((req.url ?? "").split("?")[0]?.split("/")[2] ?? "");
          const wf = id ? await store.workflow(o.db, app.tenantId, id) : undefined;
          if (!wf || wf.sourceAppId !== app.id)
            throw Object.assign(new Error(`no workflow ${id} reads from this app`), { status: 404, reason: "NOT_FOUND" });
          const body = await readJson(req, o.maxBytes);
          if (typeof body !== "object" || body === null || Array.isArray(body))
            throw Object.assign(new Error("the body must be a JSON object"), { status: 400 });
          return o.app.execute(app.tenantId, id, body as Record<string, unknown>, header(req, "x-message-id"), `app:${app.id}`);
        }),
    },
  ];
}
