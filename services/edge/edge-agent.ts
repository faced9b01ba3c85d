import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import { type AddressInfo, createServer as createNetServer, type Socket } from "node:net";
import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type HandlerContext } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { Counter, Gauge, Registry } from "prom-client";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../../gen/grpc/health/v1/health_pb.js";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { domainError, errorReason } from "../kernel/errors.js";
import { sniffProtocol } from "../kernel/server/protocol-sniffer.js";
import { EdgeQueue, type LocalApp, type QueuedMessage, QueueFullError } from "./edge-queue.js";

/** Settings of {@link startEdgeAgent}. */
export interface EdgeAgentOptions {
  /** The hub's URL (gRPC, HTTP/2 cleartext or TLS), e.g. http://nexus.internal:8080. */
  hubUrl: string;
  /** The edge token (`nxe_…`) RegisterEdge returned: scoped to its tenant and assigned apps. */
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
  /** Runs the forwarder now, skipping retry delays, until every lane is idle (tests, benchmarks). */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Messages per ForwardMessages call (the hub's group commit takes 200 at a time). */
const FORWARD_BATCH = 200;
/** Payload bytes per ForwardMessages call (the hub's default request limit is 4 MiB). */
const FORWARD_MAX_BYTES = 1024 * 1024;
/** Health service names the agent answers for ("" is the whole agent). */
const HEALTH_SERVICES = ["", IntegrationService.typeName];
const UNREACHABLE = new Set<Code>([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Internal, Code.Canceled, Code.Aborted]);

/**
 * `nexus edge`: accepts the hub's ingress (`POST /ingress` with `X-API-Key`, and
 * `IntegrationService.Ingest` over gRPC/Connect with the app key), checks app keys against the
 * digests synced from the hub (EdgeService.GetEdgeConfig, cached on disk), queues every accepted
 * message durably, and forwards the queue to the hub in batches (EdgeService.ForwardMessages) —
 * per app in order, one lane per app with its own retry delay, each message under its client
 * message id so the hub accepts it once however often it is sent. The edge token (RegisterEdge)
 * scopes it to its tenant and assigned apps. `GET /health`, grpc.health.v1 and `/metrics`
 * report the same state. docs/edge.md.
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
  const edgeHub = createClient(EdgeService, transport);

  let apps = new Map<string, LocalApp>();
  let lastSync: number | undefined;
  let hubReachable = false;
  /** Set while the hub refuses the edge token (revoked or unknown): the agent stops accepting. */
  let tokenRefused: { reason: string; message: string } | undefined;
  let forwardedCount = 0;
  let failedCount = 0;
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
  const forwardErrors = new Counter({
    name: "nexus_edge_forward_errors_total",
    help: "ForwardMessages calls that failed (the batch stays queued and is retried), by reason.",
    labelNames: ["reason"],
    registers: [registry],
  });
  new Gauge({
    name: "nexus_edge_token_refused",
    help: "1 while the hub refuses the edge token (revoked or unknown).",
    registers: [registry],
    collect() {
      this.set(tokenRefused ? 1 : 0);
    },
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
      this.set(oldestAgeSeconds(queue.stats().oldestEnqueuedAt));
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

  function oldestAgeSeconds(oldest: number | undefined): number {
    return oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
  }

  /** SERVING unless the hub refuses the token or no configuration was ever synced. */
  function serving(): boolean {
    return !closed && tokenRefused === undefined && !(apps.size === 0 && lastSync === undefined);
  }

  async function sync(): Promise<void> {
    const s = queue.stats();
    try {
      const cfg = await edgeHub.getEdgeConfig({
        status: {
          queueDepth: BigInt(s.depth),
          queueBytes: BigInt(s.bytes),
          oldestQueuedAgeSeconds: oldestAgeSeconds(s.oldestEnqueuedAt),
          forwardedTotal: BigInt(forwardedCount),
          failedTotal: BigInt(failedCount),
          ...(lastSync !== undefined ? { lastSyncTime: timestampFromDate(new Date(lastSync)) } : {}),
        },
      });
      const list: LocalApp[] = cfg.apps.map((a) => ({
        appId: a.appId,
        keyDigest: Buffer.from(a.keyDigest).toString("hex"),
        encryptionRequired: a.encryptionRequired,
      }));
      lastSync = cfg.syncedAt ? timestampDate(cfg.syncedAt).getTime() : Date.now();
      apps = new Map(list.map((a) => [a.appId, a]));
      queue.saveConfig(list, lastSync);
      hubReachable = true;
      tokenRefused = undefined;
    } catch (err) {
      const e = ConnectError.from(err);
      if (UNREACHABLE.has(e.code)) hubReachable = false;
      else hubReachable = true;
      if (e.code === Code.Unauthenticated) {
        if (!tokenRefused) o.logger.error({ reason: errorReason(e), message: e.rawMessage }, "edge: the hub refuses this agent's token");
        tokenRefused = { reason: errorReason(e) ?? "UNAUTHENTICATED", message: e.rawMessage };
        return;
      }
      o.logger.warn({ code: Code[e.code], message: e.rawMessage }, "edge: configuration sync failed (keeping the last one)");
    }
  }

  // ---- ingress ----

  function authenticate(key: string, appId: string | undefined): LocalApp {
    if (tokenRefused)
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        `the hub refuses this edge agent's token (${tokenRefused.reason}: ${tokenRefused.message}); messages are not accepted until an administrator fixes it`,
      );
    if (apps.size === 0 && lastSync === undefined)
      throw domainError("DEPENDENCY_UNAVAILABLE", "the edge agent has not synced its configuration from the hub yet; retry");
    const digest = createHash("sha256").update(key, "utf8").digest("hex");
    const app = [...apps.values()].find((a) => a.keyDigest === digest);
    if (!key || !app) throw domainError("AUTH_UNAUTHORIZED", "the app key is missing or not a valid key of an app this edge agent serves");
    if (appId !== undefined && appId !== "" && appId !== app.appId)
      throw domainError("TENANT_MISMATCH", `the app key belongs to app ${app.appId}, not ${appId}`);
    return app;
  }

  async function admit(app: LocalApp, payload: unknown, clientMessageId: string): Promise<{ messageId: string; duplicate: boolean }> {
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
      const r = await queue.enqueueSoon(app.appId, id, JSON.stringify(payload));
      if (!r.duplicate) accepted.inc();
      kick(app.appId);
      return { messageId: id, duplicate: r.duplicate };
    } catch (err) {
      if (err instanceof QueueFullError) throw domainError("EDGE_QUEUE_FULL", err.message, {}, { retryAfterMs: 5_000 });
      throw err;
    }
  }

  async function refusedWith<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      refused.inc({ reason: errorReason(err) ?? "UNKNOWN" });
      throw err;
    }
  }

  const rpc = connectNodeAdapter({
    routes(router) {
      router.rpc(IntegrationService.method.ingest, async (req, ctx: HandlerContext) => {
        const auth = ctx.requestHeader.get("x-api-key") ?? ctx.requestHeader.get("authorization")?.replace(/^Bearer\s+/i, "") ?? "";
        return refusedWith(async () => {
          const app = authenticate(auth, req.appId);
          const r = await admit(app, req.payload as JsonObject | undefined, req.clientMessageId);
          return { messageId: r.messageId, duplicate: r.duplicate, workflows: 0 };
        });
      });
      // grpc.health.v1 with the state of GET /health (SERVING unless the token is refused or
      // nothing was ever synced), for "" and the ingress API.
      const status = (service: string) => {
        if (!HEALTH_SERVICES.includes(service)) throw new ConnectError(`unknown service ${JSON.stringify(service)}`, Code.NotFound);
        return serving() ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
      };
      router.service(Health, {
        check: (req) => ({ status: status(req.service) }),
        list: () => ({ statuses: Object.fromEntries(HEALTH_SERVICES.map((n) => [n, { status: status(n) }])) }),
        async *watch(req, ctx) {
          let last: ServingStatus | undefined;
          while (!ctx.signal.aborted) {
            const now = HEALTH_SERVICES.includes(req.service) ? status(req.service) : ServingStatus.SERVICE_UNKNOWN;
            if (now !== last) yield { status: now };
            last = now;
            await new Promise((r) => setTimeout(r, 1_000));
          }
        },
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
          const ok = serving();
          json(ok ? 200 : 503, {
            status: ok ? "SERVING" : "NOT_SERVING",
            token_refused: tokenRefused?.reason ?? null,
            hub: o.hubUrl,
            hub_reachable: hubReachable,
            queue_depth: s.depth,
            queue_bytes: s.bytes,
            queue_max_bytes: o.maxQueueBytes,
            oldest_queued_age_seconds: oldestAgeSeconds(s.oldestEnqueuedAt),
            rejected_by_hub: s.rejected,
            forwarded: forwardedCount,
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
            const r = await refusedWith(() => admit(authenticate(header("x-api-key"), undefined), payload, header("x-message-id")));
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

  /** One lane per app: its batches go one at a time (order), with its own retry delay. */
  interface Lane {
    running?: Promise<void>;
    again: boolean;
    timer?: NodeJS.Timeout;
    backoff: number;
  }
  const lanes = new Map<string, Lane>();
  let closed = false;

  /** Forwards an app's queue until it is empty (true) or the hub cannot take it now (false). */
  async function forwardLane(appId: string): Promise<boolean> {
    let limit = FORWARD_BATCH;
    for (;;) {
      if (closed) return true;
      const batch = queue.head(appId, limit, FORWARD_MAX_BYTES);
      if (batch.length === 0) return true;
      try {
        const r = await edgeHub.forwardMessages({
          appId,
          messages: batch.map((m) => ({ clientMessageId: m.clientMessageId, payload: JSON.parse(m.payload) as JsonObject })),
        });
        hubReachable = true;
        if (r.results.length !== batch.length)
          throw new ConnectError(`the hub answered ${r.results.length} results for ${batch.length} messages`, Code.Internal);
        const accepted: QueuedMessage[] = [];
        const rejected: Array<{ m: QueuedMessage; code: string; reason: string; message: string }> = [];
        batch.forEach((m, i) => {
          const res = r.results[i];
          if (res?.error) rejected.push({ m, code: res.error.code, reason: res.error.reason, message: res.error.message });
          else accepted.push(m);
        });
        queue.settle(accepted, rejected);
        forwarded.inc(accepted.length);
        forwardedCount += accepted.length;
        if (rejected.length > 0) {
          rejectedByHub.inc(rejected.length);
          failedCount += rejected.length;
          for (const x of rejected)
            o.logger.warn(
              { appId, clientMessageId: x.m.clientMessageId, code: x.code, reason: x.reason, message: x.message },
              "edge: the hub refused a queued message (kept in the rejected table)",
            );
        }
      } catch (err) {
        const e = ConnectError.from(err);
        const reason = errorReason(e) ?? Code[e.code];
        forwardErrors.inc({ reason });
        hubReachable = !UNREACHABLE.has(e.code);
        // The whole call refused for its content (a message the hub cannot store, a batch over
        // its size limit): go one message at a time, and set aside a single message so refused.
        const perMessage = e.code === Code.InvalidArgument || reason === "REQUEST_TOO_LARGE";
        if (perMessage && batch.length > 1) {
          limit = 1;
          continue;
        }
        const [only] = batch;
        if ((perMessage || reason === "NOT_FOUND") && only && batch.length === 1) {
          // NOT_FOUND: the app was deleted at the hub — nothing could ever take these.
          queue.settle([], [{ m: only, code: Code[e.code], reason, message: e.rawMessage }]);
          rejectedByHub.inc();
          failedCount++;
          o.logger.warn(
            { appId, clientMessageId: only.clientMessageId, reason, message: e.rawMessage },
            "edge: the hub refused a queued message",
          );
          continue;
        }
        if (reason === "NOT_FOUND" && batch.length > 1) {
          limit = 1;
          continue;
        }
        if (e.code === Code.Unauthenticated) tokenRefused = { reason, message: e.rawMessage };
        // Unreachable, the token refused, the app not assigned (an admin may assign it again):
        // everything stays queued and the lane retries after its delay.
        if (!UNREACHABLE.has(e.code))
          o.logger.warn(
            { appId, code: Code[e.code], reason, message: e.rawMessage },
            "edge: the hub refused a batch; kept queued, retrying",
          );
        return false;
      }
    }
  }

  function kickLane(appId: string): void {
    if (closed) return;
    let lane = lanes.get(appId);
    if (!lane) {
      lane = { again: false, backoff: 200 };
      lanes.set(appId, lane);
    }
    const l = lane;
    if (l.running) {
      l.again = true;
      return;
    }
    if (l.timer) return;
    l.running = forwardLane(appId)
      .then((done) => {
        if (done) {
          l.backoff = 200;
          return;
        }
        // Try again after a doubling delay (max 5 s).
        l.timer = setTimeout(() => {
          l.timer = undefined;
          kickLane(appId);
        }, l.backoff);
        l.backoff = Math.min(l.backoff * 2, 5_000);
      })
      .catch((err: unknown) => o.logger.error({ err, appId }, "edge: forwarding failed"))
      .finally(() => {
        l.running = undefined;
        if (l.again) {
          l.again = false;
          kickLane(appId);
        }
      });
  }

  function kick(appId?: string): void {
    for (const id of appId === undefined ? queue.queuedApps() : [appId]) kickLane(id);
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
      // Now: lanes waiting out a retry delay go at once.
      for (const l of lanes.values()) {
        if (l.timer) clearTimeout(l.timer);
        l.timer = undefined;
      }
      kick();
      for (;;) {
        const running = [...lanes.values()].flatMap((l) => (l.running ? [l.running] : []));
        if (running.length === 0) return;
        await Promise.all(running);
      }
    },
    async close() {
      closed = true;
      clearInterval(syncTimer);
      for (const l of lanes.values()) if (l.timer) clearTimeout(l.timer);
      const closing = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await closing;
      await Promise.all([...lanes.values()].map((l) => l.running));
      queue.close();
    },
  };
}
