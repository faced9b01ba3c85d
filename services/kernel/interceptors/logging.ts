import type { Interceptor } from "@connectrpc/connect";
import { ConnectError, createContextKey } from "@connectrpc/connect";
import { trace } from "@opentelemetry/api";
import type { Logger } from "pino";
import { requestMetaKey } from "../context.js";
import { errorReason } from "../errors.js";
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
 */
export function logRpc(log: Logger, fields: RpcLogFields): void {
  const code = codeName(fields.error);
  const line: Record<string, unknown> = {
    protocol: fields.protocol,
    code,
    duration_ms: Math.round((performance.now() - fields.startedAt) * 1000) / 1000,
  };
  let level: "debug" | "info" | "error" = QUIET_SERVICES.has(fields.service) ? "debug" : "info";
  if (fields.error !== undefined) {
    const ce = ConnectError.from(fields.error);
    line.error = ce.rawMessage;
    const reason = errorReason(ce);
    if (reason) line.reason = reason;
    if (isServerFault(ce)) {
      level = "error";
      line.err = ce.cause ?? ce;
    }
  }
  log[level](line, `${fields.service}/${fields.method} ${code}`);
}

/** The child logger for one request: its ids, service and method, and trace id if tracing. */
export function requestLogger(logger: Logger, fields: Record<string, unknown>): Logger {
  const spanContext = trace.getActiveSpan()?.spanContext();
  const bindings: Record<string, unknown> = { ...fields };
  if (spanContext && trace.isSpanContextValid(spanContext)) bindings.trace_id = spanContext.traceId;
  return logger.child(bindings);
}

/**
 * Server interceptor: a pino child logger per request (available to handlers under
 * {@link requestLoggerKey}) and exactly one line per RPC when it ends — for streams, when the
 * stream ends.
 */
export function loggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const startedAt = performance.now();
    const { service, method } = rpcName(req);
    const meta = req.contextValues.get(requestMetaKey);
    const log = requestLogger(logger, {
      request_id: meta?.requestId,
      correlation_id: meta?.correlationId,
      service,
      method,
    });
    req.contextValues.set(requestLoggerKey, log);
    const protocol = rpcProtocol(req.header);
    return settleRpc(
      () => next(req),
      req.signal,
      (error) => logRpc(log, { service, method, protocol, startedAt, error }),
    );
  };
}
