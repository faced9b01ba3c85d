import type { Interceptor } from "@connectrpc/connect";
import { ConnectError, createContextKey } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import type { Logger } from "pino";
import { requestMetaKey } from "../context.js";
import { errorReason } from "../errors.js";
import { writeFlatLine } from "../logger.js";
import { codeName, isServerFault, rpcName, rpcProtocol, settleRpc } from "./rpc-call.js";

/**
 * Connect context value: the per-request child logger (request_id, correlation_id, service,
 * method, trace_id bound). Handlers log through it so their lines join the RPC's line.
 */
export const requestLoggerKey = createContextKey<Logger | undefined>(undefined, {
  description: "nexus request logger",
});

/**
 * Services whose calls are logged at debug level: probes and tooling call them constantly,
 * and a line per Kubernetes probe would drown the real traffic.
 */
export const QUIET_SERVICES: ReadonlySet<string> = new Set([
  "grpc.health.v1.Health",
  "grpc.reflection.v1.ServerReflection",
  "grpc.reflection.v1alpha.ServerReflection",
]);

/** Fields of the one line logged per RPC. */
export interface RpcLogFields {
  service: string;
  method: string;
  protocol: string;
  startedAt: number;
  error: unknown;
}

/**
 * Writes the one line for a finished RPC: code, duration_ms, and for failures the message and
 * ErrorInfo reason. The cause of a server fault (what the client never sees) is logged as
 * `err`. Server faults log at error, refusals and caller mistakes at info.
 *
 * `bindings` (the request's ids, service, method) are written into the line when given, so
 * `log` may be the process logger itself: a child logger per call costs its bindings'
 * serialization and redaction even when the handler never logs.
 */
export function logRpc(log: Logger, fields: RpcLogFields, bindings?: Record<string, unknown>): void {
  let level: "debug" | "info" | "error" = QUIET_SERVICES.has(fields.service) ? "debug" : "info";
  let ce: ConnectError | undefined;
  if (fields.error !== undefined) {
    ce = ConnectError.from(fields.error);
    if (isServerFault(ce)) level = "error";
  }
  // Probes' lines are debug: at the usual level nothing is built for them.
  if (!log.isLevelEnabled(level)) return;
  const code = codeName(fields.error);
  const line: Record<string, unknown> = {
    ...bindings,
    protocol: fields.protocol,
    code,
    duration_ms: Math.round((performance.now() - fields.startedAt) * 1000) / 1000,
  };
  const msg = `${fields.service}/${fields.method} ${code}`;
  if (ce !== undefined) {
    line.error = ce.rawMessage;
    const reason = errorReason(ce);
    if (reason) line.reason = reason;
    if (level === "error") line.err = ce.cause ?? ce;
  }
  // Most lines are flat (ids, names, code, duration): written without pino's general serializer.
  if (level !== "error" && writeFlatLine(log, level, line, msg)) return;
  log[level](line, msg);
}

/** The bindings of one request's lines: its ids, service and method, and trace id if tracing. */
export function requestBindings(fields: Record<string, unknown>): Record<string, unknown> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  const bindings: Record<string, unknown> = { ...fields };
  if (spanContext && trace.isSpanContextValid(spanContext)) bindings.trace_id = spanContext.traceId;
  return bindings;
}

/** The child logger for one request: its ids, service and method, and trace id if tracing. */
export function requestLogger(logger: Logger, fields: Record<string, unknown>): Logger {
  return logger.child(requestBindings(fields));
}

/**
 * A logger that becomes `logger.child(bindings)` the first time it is used. Most handlers
 * never log, and a pino child serializes and redacts its bindings when it is created.
 */
export function lazyChildLogger(logger: Logger, bindings: Record<string, unknown>): Logger {
  // One small target per call and one shared handler: no closures or handler object per call
  // (this runs on every RPC). The target's fields are symbols, so the proxy shows no keys.
  const target: LazyTarget = { [PARENT]: logger, [BINDINGS]: bindings, [CHILD]: undefined };
  return new Proxy(target, LAZY_LOGGER) as unknown as Logger;
}

const PARENT = Symbol("parent");
const BINDINGS = Symbol("bindings");
const CHILD = Symbol("child");

interface LazyTarget {
  [PARENT]: Logger;
  [BINDINGS]: Record<string, unknown>;
  [CHILD]: Logger | undefined;
}

function realLogger(t: LazyTarget): Logger {
  let child = t[CHILD];
  if (child === undefined) {
    child = t[PARENT].child(t[BINDINGS]);
    t[CHILD] = child;
  }
  return child;
}

const LAZY_LOGGER: ProxyHandler<LazyTarget> = {
  get(t, prop) {
    const target = realLogger(t);
    const value: unknown = Reflect.get(target, prop, target);
    return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
  },
  set(t, prop, value) {
    return Reflect.set(realLogger(t), prop, value);
  },
  has(t, prop) {
    return Reflect.has(realLogger(t), prop);
  },
};

/**
 * Server interceptor: a pino child logger per request (available to handlers under
 * {@link requestLoggerKey}; created on first use) and exactly one line per RPC when it ends —
 * for streams, when the stream ends.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const startedAt = performance.now();
    const { service, method } = rpcName(req);
    const meta = req.contextValues.get(requestMetaKey);
    const bindings = requestBindings({
      request_id: meta?.requestId,
      correlation_id: meta?.correlationId,
      service,
      method,
    });
    req.contextValues.set(requestLoggerKey, lazyChildLogger(logger, bindings));
    const protocol = rpcProtocol(req.header);
    return settleRpc(
      () => next(req),
      req.signal,
      (error) => logRpc(logger, { service, method, protocol, startedAt, error }, bindings),
    );
  };
}
