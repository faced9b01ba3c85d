import type { ServerResponse } from "node:http";
import http from "node:http";
import type { Http2ServerRequest, Http2Session } from "node:http2";
import http2 from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import net from "node:net";
import type { DescService } from "@bufbuild/protobuf";
import type { Validator } from "@bufbuild/protovalidate";
import type { ConnectRouter, ContextValues, HandlerContext, Interceptor } from "@connectrpc/connect";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import { context, propagation, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Logger } from "pino";
import { collectDefaultMetrics, register } from "prom-client";
import { Health } from "../../../gen/grpc/health/v1/health_pb.js";
import { ServerReflection as ReflectionV1 } from "../../../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ReflectionV1alpha } from "../../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { type PeerSource, socketAddressKey } from "../authz/client-address.js";
import type { NexusConfig } from "../config.js";
import type { RequestMeta } from "../context.js";
import { CORRELATION_ID_HEADER, REQUEST_ID_HEADER, requestMetaKey, requestScope, responseMetadataKey } from "../context.js";
import { EVENT_FILES } from "../events/event-files.js";
import { normalizeError } from "../interceptors/error-normalizing.js";
import { logRpc, requestLogger } from "../interceptors/logging.js";
import { ensureRequestMeta, requestMetaFromValues } from "../interceptors/request-id.js";
import { rpcProtocol } from "../interceptors/rpc-call.js";
import { recordRpc } from "../interceptors/rpc-metrics.js";
import { serverInterceptors } from "../interceptors/server-chain.js";
import { headerGetter } from "../interceptors/tracing.js";
import type { CorsOptions } from "./cors.js";
import { createCors } from "./cors.js";
import { fixGrpcStatus, rewriteDecodeErrors } from "./decode-errors.js";
import { registerHealthService } from "./health-service.js";
import { createHttpEndpoints, createServiceRoutes } from "./http-endpoints.js";
import { createInProcessClient } from "./in-process-client.js";
import { createNodeAdapter } from "./node-adapter.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { plain } from "./node-http.js";
import { createOpenApiEndpoint } from "./openapi-endpoint.js";
import { sniffProtocol } from "./protocol-sniffer.js";
import { createReflectionIndex } from "./reflection-index.js";
import { registerReflectionServices } from "./reflection-service.js";
import type { HttpRoute, ReadinessCheck, ServiceModule } from "./service-module.js";
import type { Lifecycle } from "./serving-state.js";
import { ServingState } from "./serving-state.js";

/** Services any caller may use without authenticating: health and reflection. */
export const PUBLIC_SERVICES: readonly string[] = Object.freeze([Health.typeName, ReflectionV1.typeName, ReflectionV1alpha.typeName]);

/** Options of {@link createServer}. */
export interface ServerOptions {
  /** The service modules to mount (one for `nexus serve`, all five for `nexus dev`). */
  services: readonly ServiceModule[];
  /** The process logger; each request gets a child of it. */
  logger: Logger;
  /**
   * The authentication slot (filled by the auth service): runs in connect's `requestGate`,
   * after headers arrive and before the body is read, for every RPC except health and
   * reflection. Throw a ConnectError (UNAUTHENTICATED…) to refuse; set `principalKey` in
   * `ctx.values` to accept. Runs inside the request's `requestScope`. Default: accept all.
   */
  authenticate?: (ctx: HandlerContext) => Promise<void>;
  /**
   * The synchronous part of `authenticate`, tried first: returns true when it accepted the call
   * without any I/O (e.g. from a cache; it sets `principalKey` as `authenticate` would), false
   * when `authenticate` must run. Optional; it must never refuse.
   */
  authenticateFromCache?: (ctx: HandlerContext) => boolean;
  /** More service names that need no authentication (besides health and reflection). */
  publicServices?: readonly string[];
  /**
   * Interceptors of later issues (RBAC, rate limits, idempotency, write freeze), run after
   * the kernel's request id, tracing, logging, metrics and error normalisation and before
   * validation.
   */
  interceptors?: readonly Interceptor[];
  /** Largest request message in bytes (NEXUS_MAX_REQUEST_BYTES); larger → RESOURCE_EXHAUSTED. Default 4 MiB. */
  readMaxBytes?: number;
  /** How long close() waits for in-flight RPCs (NEXUS_SHUTDOWN_TIMEOUT_MS). Default 15 s. */
  shutdownTimeoutMs?: number;
  /** CORS for browsers (origins from NEXUS_CORS_ORIGINS). Default: any origin. */
  cors?: CorsOptions;
  /** Readiness checks shared by every service (database, bus), by name. */
  readinessChecks?: Readonly<Record<string, ReadinessCheck>>;
  /** How long one readiness check may take before it counts as failed. Default 2 s. */
  readinessTimeoutMs?: number;
  /** How often health Watch streams re-run readiness checks. Default 5 s. */
  healthWatchIntervalMs?: number;
  /** Also export Node's process metrics (CPU, memory, event loop) on /metrics. Default true. */
  collectDefaultMetrics?: boolean;
  /** Plain HTTP endpoints of the process itself, not of one service (the web console at /console). */
  httpRoutes?: readonly HttpRoute[];
  /** Shared protovalidate validator. Default: a new one per server. */
  validator?: Validator;
}

/** Where to listen. */
export interface ListenOptions {
  /** TCP port; 0 picks a free one (tests). Default 8080. */
  port?: number;
  /** Interface; default "0.0.0.0". */
  host?: string;
}

/** The address a server is bound to. */
export interface BoundAddress {
  host: string;
  port: number;
  /** Base URL for clients, e.g. "http://127.0.0.1:8080" (wildcard hosts shown as localhost). */
  url: string;
}

/** A Nexus server: built by {@link createServer}, listening after {@link NexusServer.listen}. */
export interface NexusServer {
  /** Starts accepting connections; resolves with the bound address. Health turns SERVING. */
  listen(options?: ListenOptions): Promise<BoundAddress>;
  /**
   * Graceful shutdown: every service NOT_SERVING, stop accepting, HTTP/2 GOAWAY and idle
   * HTTP/1 connections closed, in-flight RPCs finish (up to the shutdown timeout, then their
   * signals abort with UNAVAILABLE), then modules' `shutdown` (reverse order) and the
   * shutdown hooks (registration order). Idempotent: every call gets the same promise.
   */
  close(): Promise<void>;
  /** The bound address, once listening. */
  address(): BoundAddress | undefined;
  /** idle → serving → draining → closed. */
  readonly lifecycle: Lifecycle;
  /** Names health knows: each module's name and every service it registered, sorted. */
  readonly services: readonly string[];
  /** Adds a readiness check; `services` limits it to those services (default: all). */
  addReadinessCheck(name: string, check: ReadinessCheck, services?: readonly string[]): void;
  /** Adds a shutdown hook (consumer drain, telemetry flush, pool close), run in registration order. */
  onShutdown(name: string, hook: () => Promise<void> | void): void;
  /** The HTTP handler (RPCs, CORS, /metrics, /healthz, /readyz, /openapi.json) for embedding in another server. */
  readonly requestHandler: (req: NodeRequest, res: NodeResponse) => void;
  /**
   * An HTTP client for connect's transports that calls this server's RPCs in this process
   * (in-process-client.ts): the peer calls between services it hosts. Calls are admitted only
   * while the server serves (else UNAVAILABLE, as a draining server's closed connections are)
   * and count in flight for graceful shutdown.
   */
  readonly inProcessClient: UniversalClientFn;
}

const DEFAULT_READ_MAX_BYTES = 4 * 1024 * 1024;
const DEFAULT_SHUTDOWN_TIMEOUT_MS = 15_000;
/** How long a client may keep sending a request the server already answered before its stream is reset. */
const DRAIN_TIMEOUT_MS = 10_000;

/**
 * Reads and discards what a client still sends on a stream whose answer is complete (up to
 * twice `maxBytes` more, or {@link DRAIN_TIMEOUT_MS}), then lets it end; a client sending past
 * that gets RST_STREAM NO_ERROR, which the gRPC spec allows after the trailers.
 */
function drainThenClose(request: Http2ServerRequest, maxBytes: number): void {
  const stream = request.stream;
  let drained = 0;
  const reset = () => {
    if (!stream.destroyed && !stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  };
  const timer = setTimeout(reset, DRAIN_TIMEOUT_MS);
  timer.unref();
  request.on("data", (chunk: Buffer) => {
    drained += chunk.byteLength;
    if (drained > 2 * maxBytes) reset();
  });
  stream.once("close", () => clearTimeout(timer));
  request.resume();
}

/**
 * The peer of an in-process call: this process, as its calls over the loopback were seen (the
 * refused-authentication limiter counts a peer call's refusals against it, as before).
 */
const IN_PROCESS_PEER: PeerSource = Object.freeze({ socket: Object.freeze({ remoteAddress: "127.0.0.1" }) });

/**
 * The context values every call starts with, over the network or in-process: its request meta
 * (from the request's `x-request-id` and `x-correlation-id`) and its connection's peer.
 */
function callContextValues(requestId: string | undefined, correlationId: string | undefined, peer: PeerSource): ContextValues {
  const values = createContextValues();
  values.set(requestMetaKey, requestMetaFromValues(requestId, correlationId));
  values.set(socketAddressKey, peer);
  return values;
}

/** The context connect hands the request gate: it is also the controller that ends the call (connect's `HandlerContextController`, not exported). */
type CallContext = HandlerContext & { abort(reason?: unknown): void };

/**
 * The reason of a call's signal once the call is over (connect aborts it without one): what
 * `AbortController.abort()` would make — a DOMException named AbortError with the same
 * message — built once instead of with a fresh stack trace per call.
 */
const CALL_ENDED = new DOMException("This operation was aborted", "AbortError");

/** After the shutdown timeout, how long aborted handlers get to send their UNAVAILABLE. */
const ABORT_GRACE_MS = 1000;

/** The server options NexusConfig decides (spread them into {@link createServer}'s options). */
export function serverOptionsFromConfig(
  config: Pick<NexusConfig, "maxRequestBytes" | "shutdownTimeoutMs" | "corsOrigins">,
): Pick<ServerOptions, "readMaxBytes" | "shutdownTimeoutMs" | "cors"> {
  return {
    readMaxBytes: config.maxRequestBytes,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    cors: { origins: config.corsOrigins },
  };
}

function nodeHeaderValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function urlHost(host: string): string {
  if (host === "0.0.0.0" || host === "::" || host === "") return "localhost";
  return host.includes(":") ? `[${host}]` : host;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Builds a Nexus server (it does not listen until `listen()`): one port speaking gRPC
 * (HTTP/2 cleartext), gRPC-Web and Connect (JSON and binary) over HTTP/1.1 and HTTP/2, with
 * grpc.health.v1, server reflection (v1 and v1alpha), CORS, /metrics, /healthz, /readyz and
 * /openapi.json (the OpenAPI description of the mounted RPCs, docs/openapi.json),
 * the kernel interceptors, the authentication gate and graceful shutdown.
 */
export function createServer(options: ServerOptions): NexusServer {
  const logger = options.logger;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? DEFAULT_SHUTDOWN_TIMEOUT_MS;
  const state = new ServingState(options.readinessTimeoutMs ?? 2000);
  const publicServices = new Set([...PUBLIC_SERVICES, ...(options.publicServices ?? [])]);
  const authenticate = options.authenticate;
  const authenticateFromCache = options.authenticateFromCache;
  const hooks: { name: string; hook: () => Promise<void> | void }[] = [];

  if (options.collectDefaultMetrics ?? true) {
    // Once per process: the default registry is shared by every server in it.
    if (register.getSingleMetric("process_cpu_user_seconds_total") === undefined) collectDefaultMetrics();
  }

  const names = new Set<string>();
  for (const m of options.services) {
    if (names.has(m.name)) throw new Error(`service module "${m.name}" is mounted twice`);
    names.add(m.name);
  }

  const routes = (router: ConnectRouter) => {
    const descs: DescService[] = [];
    const owner = new Map<string, string>();
    for (const m of options.services) {
      const before = router.handlers.length;
      m.register(router);
      const registered = [...new Set(router.handlers.slice(before).map((h) => h.service))];
      for (const s of registered) {
        const other = owner.get(s.typeName);
        if (other !== undefined) throw new Error(`service ${s.typeName} is registered by both "${other}" and "${m.name}"`);
        owner.set(s.typeName, m.name);
        descs.push(s);
      }
      const healthNames = [...new Set([m.name, ...registered.map((s) => s.typeName)])];
      for (const n of healthNames) state.addService(n);
      if (m.readiness) state.addCheck(m.name, m.readiness, healthNames);
    }
    registerHealthService(router, state, options.healthWatchIntervalMs ? { watchIntervalMs: options.healthWatchIntervalMs } : {});
    // The event payload files too: no API imports them, and consumers decode events with them.
    registerReflectionServices(router, createReflectionIndex([...descs, Health, ReflectionV1, ReflectionV1alpha], EVENT_FILES));
  };
  for (const [name, check] of Object.entries(options.readinessChecks ?? {})) state.addCheck(name, check);

  // ---- calls in progress, for aborting them at the shutdown timeout ----
  // connect-node can link every call's signal to a shutdown signal, but that is an
  // addEventListener/removeEventListener pair and an extra dispatch per call. Instead every
  // call's context is kept in a Set from the request gate (which connect runs for every call,
  // on every protocol) until connect aborts its signal at the end of the call, and the
  // shutdown timeout aborts each that is left, with the same reason the linked signal had.
  const liveCalls = new Set<CallContext>();
  const trackCall = (ctx: CallContext): void => {
    const abort = ctx.abort;
    liveCalls.add(ctx);
    // connect ends every call with `abort()` (no reason): the signal's reason would be a new
    // DOMException, whose stack capture was ~5 % of a unary call's CPU. The shared
    // CALL_ENDED is the same kind of value (AbortError, same message), made once.
    ctx.abort = (reason?: unknown) => {
      liveCalls.delete(ctx);
      abort(reason === undefined ? CALL_ENDED : reason);
    };
  };

  // Not an async function: a public call or one the cache accepts passes without an async frame.
  const requestGate = (ctx: HandlerContext): undefined | Promise<void> => {
    trackCall(ctx as CallContext);
    const meta = ensureRequestMeta(ctx.values, ctx.requestHeader);
    ctx.responseHeader.set(REQUEST_ID_HEADER, meta.requestId);
    ctx.values.set(responseMetadataKey, { header: ctx.responseHeader, trailer: ctx.responseTrailer });
    if (authenticate === undefined || publicServices.has(ctx.service.typeName)) return;
    if (authenticateFromCache?.(ctx)) return;
    return gate(ctx, meta, authenticate);
  };
  const gate = async (ctx: HandlerContext, meta: RequestMeta, authenticate: (ctx: HandlerContext) => Promise<void>) => {
    const startedAt = performance.now();
    try {
      // The caller's trace continues into authentication (a remote Authenticate call joins it).
      const traceContext = propagation.extract(ROOT_CONTEXT, ctx.requestHeader, headerGetter);
      await requestScope.run(meta, () =>
        traceContext === ROOT_CONTEXT ? authenticate(ctx) : context.with(traceContext, () => authenticate(ctx)),
      );
    } catch (err) {
      // A refused call never reaches the interceptors: log and count it here.
      const error = normalizeError(err, ctx.signal, meta.requestId);
      const service = ctx.service.typeName;
      const method = ctx.method.name;
      const log = requestLogger(logger, { request_id: meta.requestId, correlation_id: meta.correlationId, service, method });
      logRpc(log, { service, method, protocol: rpcProtocol(ctx.requestHeader), startedAt, error });
      recordRpc(service, method, error, (performance.now() - startedAt) / 1000);
      throw error;
    }
  };

  const readMaxBytes = options.readMaxBytes ?? DEFAULT_READ_MAX_BYTES;
  const rpcHandler = createNodeAdapter({
    routes,
    logger,
    beforeTrailers: fixGrpcStatus,
    rewriteAnswer: rewriteDecodeErrors,
    interceptors: serverInterceptors({
      logger,
      ...(options.interceptors ? { extra: options.interceptors } : {}),
      ...(options.validator ? { validator: options.validator } : {}),
    }),
    readMaxBytes,
    // A JSON field the API does not have is a mistake to report (INVALID_ARGUMENT naming the
    // key), as the protobuf JSON mapping and Google's APIs do, not something to drop silently.
    jsonOptions: { ignoreUnknownFields: false },
    requestGate,
    // The connection's peer, for decisions a header must not decide (the refused-authentication
    // limiter), read from the request only when one is made.
    contextValues: (req) =>
      callContextValues(nodeHeaderValue(req.headers[REQUEST_ID_HEADER]), nodeHeaderValue(req.headers[CORRELATION_ID_HEADER]), req),
  });

  const cors = createCors(options.cors);
  const endpoints = createHttpEndpoints(state, logger);
  const openapi = createOpenApiEndpoint({ services: () => state.services, logger });
  const processRoutes: ServiceModule = { name: "process", register: () => {}, httpRoutes: options.httpRoutes ?? [] };
  const serviceRoutes = createServiceRoutes([...options.services, processRoutes], logger);

  // ---- in-flight accounting (drives graceful shutdown) ----
  let inFlight = 0;
  const http1InFlight = new Set<ServerResponse>();
  let idleWaiters: (() => void)[] = [];
  const settleOne = () => {
    inFlight--;
    if (inFlight === 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const w of waiters) w();
    }
  };
  const idle = () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve)));

  // Calls from this process (peer calls between the services it hosts) as if they came in over
  // the loopback: the same context values, admitted only while serving, counted in flight.
  const inProcessClient = createInProcessClient({
    handlers: rpcHandler.handlers,
    contextValues: (header) =>
      callContextValues(header.get(REQUEST_ID_HEADER) ?? undefined, header.get(CORRELATION_ID_HEADER) ?? undefined, IN_PROCESS_PEER),
    admit: () => {
      if (state.lifecycle !== "serving") {
        throw new ConnectError(`the server is ${state.lifecycle === "idle" ? "not serving yet" : "shutting down"}`, Code.Unavailable);
      }
      inFlight++;
      return settleOne;
    },
    beforeTrailers: fixGrpcStatus,
  });

  const requestHandler: NexusServer["requestHandler"] = (req, res) => {
    inFlight++;
    const h1 = req.httpVersionMajor === 1 ? (res as ServerResponse) : undefined;
    if (h1) {
      http1InFlight.add(h1);
      // One listener per request (each listener is an allocation and a dispatch).
      h1.once("close", () => {
        settleOne();
        http1InFlight.delete(h1);
        if (state.lifecycle === "draining") http1Server.closeIdleConnections();
      });
      // Draining: answer, then close the connection instead of keeping it alive.
      if (state.lifecycle !== "serving" && state.lifecycle !== "idle") h1.shouldKeepAlive = false;
    } else {
      res.once("close", settleOne);
      // When the answer is complete but the client is still sending (a refused or oversized
      // request connect stopped reading), read and discard the rest so the client finishes its
      // send and reads the trailers already on the wire. connect stops reading with the body
      // iterator's return(); destroying the request there would send RST_STREAM CANCEL, racing
      // the trailers (gRPC clients then report CANCELLED), and the data the stream held would
      // never be consumed, so the connection's flow-control window would shrink until later
      // calls on the connection hang. So the body (node-adapter.ts) leaves an HTTP/2 stream
      // open, and the rest is drained (bounded in bytes and time; past that, RST_STREAM
      // NO_ERROR, as the gRPC spec allows after the trailers).
      const request = req as Http2ServerRequest;
      const stream = request.stream;
      stream.once("wantTrailers", () => {
        // The usual case, a request read to its end, is settled here without a setImmediate.
        if (request.readableEnded) return;
        setImmediate(() => {
          const clientStillSending = !stream.destroyed && !request.readableEnded && stream.state.remoteClose === 0;
          if (clientStillSending) drainThenClose(request, readMaxBytes);
        });
      });
    }
    try {
      if (cors(req, res)) return;
      if (endpoints(req, res)) return;
      if (openapi(req, res)) return;
      if (serviceRoutes(req, res)) return;
      rpcHandler(req, res);
    } catch (err) {
      logger.error({ err, url: req.url }, "request handling failed");
      if (!res.headersSent) plain(res).writeHead(500);
      plain(res).end();
    }
  };

  // ---- one port, two protocols ----
  const http1Server = http.createServer(requestHandler);
  const http2Server = http2.createServer(requestHandler);
  const sockets = new Set<Socket>();
  const sessions = new Set<Http2Session>();
  http2Server.on("session", (session: Http2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A connection that finished its preface after close() began gets GOAWAY at once.
    if (state.lifecycle === "draining" || state.lifecycle === "closed") session.close();
  });
  http2Server.on("sessionError", (err) => logger.debug({ err }, "http2 session error"));
  const netServer = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", (err) => logger.debug({ err }, "connection error"));
    sniffProtocol(socket, (protocol, s) => (protocol === "http2" ? http2Server : http1Server).emit("connection", s));
  });

  let bound: BoundAddress | undefined;
  let closing: Promise<void> | undefined;

  const runHooks = async (deadline: number) => {
    const steps = [
      ...[...options.services].reverse().flatMap((m) => (m.shutdown ? [{ name: `module ${m.name}`, hook: m.shutdown }] : [])),
      ...hooks,
    ];
    for (const step of steps) {
      try {
        const outcome = await withTimeout(Promise.resolve().then(step.hook), Math.max(deadline - Date.now(), 2000));
        if (outcome === "timeout") logger.warn({ hook: step.name }, "shutdown hook timed out");
      } catch (err) {
        logger.error({ err, hook: step.name }, "shutdown hook failed");
      }
    }
  };

  const server: NexusServer = {
    get lifecycle() {
      return state.lifecycle;
    },
    get services() {
      return state.services;
    },
    requestHandler,
    inProcessClient,
    address: () => bound,
    addReadinessCheck: (name, check, services) => state.addCheck(name, check, services),
    onShutdown(name, hook) {
      hooks.push({ name, hook });
    },

    async listen(listenOptions = {}) {
      if (state.lifecycle !== "idle") throw new Error(`cannot listen: server is ${state.lifecycle}`);
      const port = listenOptions.port ?? 8080;
      const host = listenOptions.host ?? "0.0.0.0";
      await new Promise<void>((resolve, reject) => {
        netServer.once("error", reject);
        netServer.listen(port, host, () => {
          netServer.off("error", reject);
          resolve();
        });
      });
      netServer.on("error", (err) => logger.error({ err }, "server socket error"));
      // The HTTP/1 server never listens itself; this starts its header/request timeout checks.
      http1Server.emit("listening");
      const addr = netServer.address() as AddressInfo;
      bound = { host: addr.address, port: addr.port, url: `http://${urlHost(addr.address)}:${addr.port}` };
      state.setLifecycle("serving");
      logger.info({ address: bound.url, services: state.services }, "nexus server listening");
      return bound;
    },

    close() {
      closing ??= (async () => {
        const deadline = Date.now() + shutdownTimeoutMs;
        if (state.lifecycle === "idle") {
          state.setLifecycle("closed");
          await runHooks(deadline);
          return;
        }
        state.setLifecycle("draining");
        logger.info({ in_flight: inFlight, timeout_ms: shutdownTimeoutMs }, "draining: refusing new connections");
        netServer.close();
        for (const session of sessions) session.close();
        for (const res of http1InFlight) res.shouldKeepAlive = false;
        http1Server.closeIdleConnections();

        if ((await withTimeout(idle(), Math.max(deadline - Date.now(), 0))) === "timeout") {
          logger.warn({ in_flight: inFlight }, "shutdown timeout: aborting in-flight RPCs");
          const reason = new ConnectError("server is shutting down", Code.Unavailable);
          for (const ctx of [...liveCalls]) ctx.abort(reason);
          await withTimeout(idle(), ABORT_GRACE_MS);
        }
        for (const session of sessions) session.destroy();
        for (const socket of sockets) socket.destroy();
        http1Server.close();
        http2Server.close();
        await runHooks(deadline);
        state.setLifecycle("closed");
        logger.info("nexus server closed");
      })();
      return closing;
    },
  };
  return server;
}
