import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { Counter, Gauge, Registry } from "prom-client";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { domainError, errorReason } from "../kernel/errors.js";
import { sniffProtocol } from "../kernel/server/protocol-sniffer.js";
import { EdgeQueue, type LocalApp, type QueuedMessage, QueueFullError } from "./edge-queue.js";

/** Settings of {@link startEdgeAgent}. */
export interface EdgeAgentOptions {
  /** The hub's URL (gRPC, HTTP/2 cleartext or TLS), e.g. http://nexus.internal:8080. */
  hubUrl: string;
  /** A Nexus API key (editor or above) of the tenant whose apps this agent serves. */
  token: string;
  host: string;
  port: number;
  dataDir: string;
  /** Bound of the queued payload bytes (RESOURCE_EXHAUSTED past it). */
  maxQueueBytes: number;
  /** How often the app configuration is synced from the hub. */
  syncIntervalMs: number;
  /** Largest accepted body of `POST /ingress`. */
  maxBodyBytes: number;
  logger: Logger;
}

/** A running agent. */
export interface EdgeAgent {
  url: string;
  /** Runs the forwarder now (tests, shutdown). */
  drain(): Promise<void>;
  close(): Promise<void>;
}

const FORWARD_BATCH = 64;
const UNREACHABLE = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Canceled, Code.Aborted]);

/**
 * `nexus edge`: accepts the hub's ingress (`POST /ingress` with `X-API-Key`, and
 * `IntegrationService.Ingest` over gRPC/Connect with the app key), checks app keys against the
 * digests synced from the hub (EdgeService.GetEdgeConfig, cached on disk), queues every accepted
 * message durably, and forwards the queue to the hub's Ingest — per app in order, one lane per
 * app, each message under its client message id so the hub accepts it once however often it is
 * sent. docs/edge.md.
 */
export async function startEdgeAgent(o: EdgeAgentOptions): Promise<EdgeAgent> {
  const queue = new EdgeQueue(o.dataDir, o.maxQueueBytes);
  const transport = createGrpcTransport({
    baseUrl: o.hubUrl,
    defaultTimeoutMs: 10_000,
    interceptors: [
      (next) => (req) => {
        req.header.set("authorization", `Bearer ${o.token}`);
        return next(req);
      },
    ],
  });
  const hub = createClient(IntegrationService, transport);
  const edgeHub = createClient(EdgeService, transport);

  let apps = new Map<string, LocalApp>();
  let lastSync: number | undefined;
  let hubReachable = false;
  const cached = queue.loadConfig();
  if (cached) {
    apps = new Map(cached.apps.map((a) => [a.appId, a]));
    lastSync = cached.syncedAt;
  }

  const registry = new Registry();
  const accepted = new Counter({
    name: "nexus_edge_accepted_total",
    help: "Messages accepted and queued by the edge agent.",
    registers: [registry],
  });
  const forwarded = new Counter({
    name: "nexus_edge_forwarded_total",
    help: "Messages the hub accepted from this agent.",
    registers: [registry],
  });
  const refused = new Counter({
    name: "nexus_edge_refused_total",
    help: "Ingress calls refused by the agent, by reason.",
    labelNames: ["reason"],
    registers: [registry],
  });
  const rejectedByHub = new Counter({
    name: "nexus_edge_hub_rejected_total",
    help: "Queued messages the hub refused for good (kept in the rejected table).",
    registers: [registry],
  });
  new Gauge({
    name: "nexus_edge_queue_depth",
    help: "Messages waiting for the hub.",
    registers: [registry],
    collect() {
      this.set(queue.stats().depth);
    },
  });
  new Gauge({
    name: "nexus_edge_queue_bytes",
    help: "Payload bytes waiting for the hub.",
    registers: [registry],
    collect() {
      this.set(queue.stats().bytes);
    },
  });
  new Gauge({
    name: "nexus_edge_oldest_queued_age_seconds",
    help: "Age of the oldest queued message (0 when empty).",
    registers: [registry],
    collect() {
      const t = queue.stats().oldestEnqueuedAt;
      this.set(t === undefined ? 0 : (Date.now() - t) / 1000);
    },
  });
  new Gauge({
    name: "nexus_edge_hub_reachable",
    help: "1 when the last call to the hub succeeded.",
    registers: [registry],
    collect() {
      this.set(hubReachable ? 1 : 0);
    },
  });
  new Gauge({
    name: "nexus_edge_apps",
    help: "Sender apps in the synced configuration.",
    registers: [registry],
    collect() {
      this.set(apps.size);
    },
  });
  new Gauge({
    name: "nexus_edge_last_sync_timestamp_seconds",
    help: "When the configuration was last synced from the hub.",
    registers: [registry],
    collect() {
      this.set(lastSync === undefined ? 0 : lastSync / 1000);
    },
  });

  async function sync(): Promise<void> {
    try {
      const cfg = await edgeHub.getEdgeConfig({});
      const list: LocalApp[] = cfg.apps.map((a) => ({
        appId: a.appId,
        keyDigest: Buffer.from(a.keyDigest).toString("hex"),
        encryptionRequired: a.encryptionRequired,
      }));
      lastSync = cfg.syncedAt ? timestampDate(cfg.syncedAt).getTime() : Date.now();
      apps = new Map(list.map((a) => [a.appId, a]));
      queue.saveConfig(list, lastSync);
      hubReachable = true;
    } catch (err) {
      const e = ConnectError.from(err);
      if (UNREACHABLE.has(e.code)) hubReachable = false;
      o.logger.warn({ code: Code[e.code], message: e.rawMessage }, "edge: configuration sync failed (keeping the last one)");
    }
  }

  // ---- ingress ----

  function authenticate(key: string, appId: string | undefined): LocalApp {
    if (apps.size === 0 && lastSync === undefined)
      throw domainError("DEPENDENCY_UNAVAILABLE", "the edge agent has not synced its configuration from the hub yet; retry");
    const digest = createHash("sha256").update(key, "utf8").digest("hex");
    const app = [...apps.values()].find((a) => a.keyDigest === digest);
    if (!key || !app) throw domainError("AUTH_UNAUTHORIZED", "the app key is missing or not a valid key of an app this edge agent serves");
    if (appId !== undefined && appId !== "" && appId !== app.appId)
      throw domainError("TENANT_MISMATCH", `the app key belongs to app ${app.appId}, not ${appId}`);
    return app;
  }

  function admit(app: LocalApp, payload: unknown, clientMessageId: string): { messageId: string; duplicate: boolean } {
    if (typeof payload !== "object" || payload === null || Array.isArray(payload))
      throw domainError("INVALID_ARGUMENT", "payload: must be a JSON object", { field: "payload" });
    if (app.encryptionRequired && (payload as Record<string, unknown>).enc === undefined)
      throw domainError("INVALID_ARGUMENT", "payload: this app requires an encrypted payload (see docs/integration.md)", {
        field: "payload",
      });
    if (clientMessageId.length > 200)
      throw domainError("INVALID_ARGUMENT", "client_message_id: at most 200 characters", { field: "client_message_id" });
    const id = clientMessageId || `edge-${randomUUID()}`;
    try {
      const r = queue.enqueue(app.appId, id, JSON.stringify(payload));
      if (!r.duplicate) accepted.inc();
      kick();
      return { messageId: id, duplicate: r.duplicate };
    } catch (err) {
      if (err instanceof QueueFullError) throw domainError("EDGE_QUEUE_FULL", err.message, {}, { retryAfterMs: 5_000 });
      throw err;
    }
  }

  function refusedWith<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      refused.inc({ reason: errorReason(err) ?? "UNKNOWN" });
      throw err;
    }
  }

  const rpc = connectNodeAdapter({
    routes(router) {
      router.rpc(IntegrationService.method.ingest, async (req, ctx: HandlerContext) => {
        const auth = ctx.requestHeader.get("x-api-key") ?? ctx.requestHeader.get("authorization")?.replace(/^Bearer\s+/i, "") ?? "";
        return refusedWith(() => {
          const app = authenticate(auth, req.appId);
          const r = admit(app, req.payload as JsonObject | undefined, req.clientMessageId);
          return { messageId: r.messageId, duplicate: r.duplicate, workflows: 0 };
        });
      });
    },
    fallback(req, res) {
      void (async () => {
        const url = new URL(req.url ?? "/", "http://edge");
        const json = (status: number, body: unknown) => {
          const text = JSON.stringify(body);
          res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
          res.end(text);
        };
        if (url.pathname === "/health" && req.method === "GET") {
          const s = queue.stats();
          json(200, {
            status: "SERVING",
            hub: o.hubUrl,
            hub_reachable: hubReachable,
            queue_depth: s.depth,
            queue_bytes: s.bytes,
            queue_max_bytes: o.maxQueueBytes,
            oldest_queued_age_seconds: s.oldestEnqueuedAt === undefined ? 0 : (Date.now() - s.oldestEnqueuedAt) / 1000,
            rejected_by_hub: s.rejected,
            apps: apps.size,
            last_sync: lastSync === undefined ? null : new Date(lastSync).toISOString(),
          });
          return;
        }
        if (url.pathname === "/metrics" && req.method === "GET") {
          const text = await registry.metrics();
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
          return;
        }
        if (url.pathname === "/ingress" && req.method === "POST") {
          const chunks: Buffer[] = [];
          let size = 0;
          for await (const c of req as AsyncIterable<Buffer>) {
            size += c.length;
            if (size > o.maxBodyBytes) {
              json(413, {
                code: "resource_exhausted",
                reason: "REQUEST_TOO_LARGE",
                message: `the body is larger than ${o.maxBodyBytes} bytes`,
              });
              return;
            }
            chunks.push(c);
          }
          const header = (n: string) => {
            const v = req.headers[n];
            return (Array.isArray(v) ? v[0] : v) ?? "";
          };
          try {
            let payload: unknown;
            try {
              payload = JSON.parse(Buffer.concat(chunks).toString("utf8"));
            } catch {
              throw domainError("INVALID_ARGUMENT", "the body is not JSON");
            }
            const r = refusedWith(() => admit(authenticate(header("x-api-key"), undefined), payload, header("x-message-id")));
            json(202, { message_id: r.messageId, duplicate: r.duplicate, queued: true });
          } catch (err) {
            const e = ConnectError.from(err);
            const status = {
              [Code.InvalidArgument]: 400,
              [Code.Unauthenticated]: 401,
              [Code.PermissionDenied]: 403,
              [Code.ResourceExhausted]: 429,
              [Code.Unavailable]: 503,
            }[e.code as number];
            if (!status) o.logger.error({ err }, "edge ingress failed");
            json(status ?? 503, { code: Code[e.code], reason: errorReason(e) ?? "", message: e.rawMessage });
          }
          return;
        }
        json(404, { code: "not_found", message: `no route ${req.method} ${url.pathname}` });
      })();
    },
  });

  // ---- forwarder ----

  let draining: Promise<void> | undefined;
  let again = false;
  let backoff = 200;
  let retryTimer: NodeJS.Timeout | undefined;
  let closed = false;

  async function forwardLane(list: QueuedMessage[]): Promise<boolean> {
    for (const m of list) {
      try {
        await hub.ingest({ appId: m.appId, payload: JSON.parse(m.payload) as JsonObject, clientMessageId: m.clientMessageId });
        queue.remove(m);
        forwarded.inc();
        hubReachable = true;
      } catch (err) {
        const e = ConnectError.from(err);
        if (UNREACHABLE.has(e.code) || e.code === Code.Unauthenticated || e.code === Code.ResourceExhausted) {
          hubReachable = !UNREACHABLE.has(e.code);
          return false;
        }
        // Refused for good (bad payload, app deleted…): set aside, the lane goes on.
        queue.reject(m, Code[e.code], errorReason(e) ?? "", e.rawMessage);
        rejectedByHub.inc();
        o.logger.warn(
          { appId: m.appId, clientMessageId: m.clientMessageId, code: Code[e.code], message: e.rawMessage },
          "edge: the hub refused a queued message",
        );
      }
    }
    return true;
  }

  async function drainOnce(): Promise<void> {
    for (;;) {
      const heads = queue.heads(FORWARD_BATCH);
      if (heads.size === 0 || closed) return;
      const ok = await Promise.all([...heads.values()].map((l) => forwardLane(l)));
      if (ok.includes(false)) throw new Error("hub unreachable");
    }
  }

  function kick(): void {
    if (closed) return;
    if (draining) {
      again = true;
      return;
    }
    if (retryTimer) return;
    draining = drainOnce()
      .then(() => {
        backoff = 200;
      })
      .catch(() => {
        // The hub is unreachable: try again after a doubling delay (max 5 s).
        retryTimer = setTimeout(() => {
          retryTimer = undefined;
          kick();
        }, backoff);
        backoff = Math.min(backoff * 2, 5_000);
      })
      .finally(() => {
        draining = undefined;
        if (again) {
          again = false;
          kick();
        }
      });
  }

  await sync();
  const syncTimer = setInterval(() => {
    void sync().then(() => kick());
  }, o.syncIntervalMs);
  kick();

  // One port for gRPC (HTTP/2 cleartext) and Connect / POST /ingress (HTTP/1.1), as on the hub.
  const h1 = http.createServer(rpc);
  const h2 = http2.createServer(rpc);
  const sockets = new Set<Socket>();
  const server = createNetServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    sniffProtocol(socket, (protocol, s) => (protocol === "http2" ? h2 : h1).emit("connection", s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${o.host}:${addr.port}`,
    async drain() {
      kick();
      while (draining) await draining;
    },
    async close() {
      closed = true;
      clearInterval(syncTimer);
      if (retryTimer) clearTimeout(retryTimer);
      const closing = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closing;
      if (draining) await draining.catch(() => undefined);
      queue.close();
    },
  };
}
