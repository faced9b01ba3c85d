import type { ConnectError, Interceptor } from "@connectrpc/connect";
import type { Attributes, Context, Span, Tracer, TracerProvider } from "@opentelemetry/api";
import { context, ProxyTracerProvider, propagation, ROOT_CONTEXT, SpanKind, trace } from "@opentelemetry/api";
import type { Logger } from "pino";
import { REQUEST_ID_HEADER, requestScope } from "../context.js";
import { normalizeError, normalizeStream } from "./error-normalizing.js";
import { lazyChildLogger, logRpc, requestLoggerKey } from "./logging.js";
import { ensureRequestMeta } from "./request-id.js";
import { bindIterable, isServerFault, rpcProtocol, watchStream } from "./rpc-call.js";
import { inFlightGauges, recordRpc } from "./rpc-metrics.js";
import { endSpan, headerGetter, TRACER_NAME } from "./tracing.js";

/** What the global tracer provider delegates to while no SDK is registered (no exporter). */
const NOOP_TRACER_PROVIDER = new ProxyTracerProvider().getDelegate();

/** True while no tracer provider is registered: every span would be a no-op. */
function tracingOff(): boolean {
  const provider = trace.getTracerProvider();
  return provider instanceof ProxyTracerProvider && provider.getDelegate() === NOOP_TRACER_PROVIDER;
}

/**
 * The kernel's observability as ONE server interceptor: what {@link requestIdInterceptor} →
 * {@link tracingInterceptor} → {@link loggingInterceptor} → {@link metricsInterceptor} →
 * {@link errorNormalizingInterceptor} do, in that order, with one async frame and one settle
 * per call instead of five of each (each layer was an async function, a closure and, for the
 * three that watch the end of a call, a settle wrapper — a measurable share of a unary call;
 * see docs/performance.md).
 *
 * Same behaviour, piece by piece:
 * - request id: the caller's sane `x-request-id` / `x-correlation-id` or fresh ones under
 *   `requestMetaKey`; the handler (and every pull of a streaming response) runs inside
 *   `requestScope`; `x-request-id` echoed on the response and on errors;
 * - tracing: a SERVER span `<service>/<method>`, child of the caller's W3C trace context,
 *   active while the handler runs; none when nothing records it and no caller's trace exists;
 * - logging: the request's lazy child logger under `requestLoggerKey` and one line per RPC;
 * - metrics: in-flight gauge, request counter and duration histogram by service/method/code;
 * - error normalisation: every error (also of a stream) is what {@link normalizeError} makes
 *   of it, and the log line, metrics and span see that error, the one the client gets.
 */
export function observabilityInterceptor(logger: Logger): Interceptor {
  const inFlightOf = inFlightGauges();
  // The global tracer provider changes only when telemetry starts or is disabled (tests): the
  // tracer is looked up again only then. A ProxyTracer follows a delegate registered later.
  let provider: TracerProvider | undefined;
  let tracer: Tracer | undefined;
  const currentTracer = (): Tracer => {
    const p = trace.getTracerProvider();
    if (p !== provider || tracer === undefined) {
      provider = p;
      tracer = p.getTracer(TRACER_NAME);
    }
    return tracer;
  };

  const methodLoggers = new WeakMap<object, Logger>();

  return (next) => async (req) => {
    const startedAt = performance.now();
    const meta = ensureRequestMeta(req.contextValues, req.header);
    const service = req.service.typeName;
    const method = req.method.name;
    const protocol = rpcProtocol(req.header);

    // ---- tracing ----
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    // No tracer provider (nothing exported) and no caller's trace: the span would record
    // nothing and carry no context to pass on, so none is made, made active or ended.
    let span: Span | undefined;
    if (parent !== ROOT_CONTEXT || !tracingOff()) {
      const attributes: Attributes = {
        "rpc.system": protocol === "connect" ? "connect_rpc" : "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "nexus.request_id": meta.requestId,
        "nexus.correlation_id": meta.correlationId,
      };
      const started = currentTracer().startSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes }, parent);
      if (started.isRecording() || trace.isSpanContextValid(started.spanContext())) span = started;
    }
    const active: Context | undefined = span ? trace.setSpan(parent, span) : undefined;

    // ---- logging ----
    // service and method are bound once per method (pino serializes a child's bindings when
    // it is made); the line and the handler's logger add the request's ids.
    let methodLogger = methodLoggers.get(req.method);
    if (methodLogger === undefined) {
      methodLogger = logger.child({ service, method });
      methodLoggers.set(req.method, methodLogger);
    }
    const bindings: Record<string, unknown> = { request_id: meta.requestId, correlation_id: meta.correlationId };
    // The trace id of the line: the server span's, or (untraced) whatever span is active here.
    const lineSpan = (span ?? trace.getActiveSpan())?.spanContext();
    if (lineSpan && trace.isSpanContextValid(lineSpan)) bindings.trace_id = lineSpan.traceId;
    req.contextValues.set(requestLoggerKey, lazyChildLogger(methodLogger, bindings));

    // ---- metrics ----
    const g = inFlightOf(service);
    g.inc();

    const call: SettleState = { g, service, method, protocol, startedAt, bindings, span, logger: methodLogger };
    // The handler in the request scope (and the span's context): no closure per call.
    let res: Awaited<ReturnType<typeof next>>;
    try {
      res = await (active === undefined ? requestScope.run(meta, next, req) : requestScope.run(meta, inContext, active, next, req));
    } catch (err) {
      const error = normalizeError(err, req.signal, meta.requestId);
      settleCall(call, error);
      if (!error.metadata.has(REQUEST_ID_HEADER)) error.metadata.set(REQUEST_ID_HEADER, meta.requestId);
      throw error;
    }
    if (!res.header.has(REQUEST_ID_HEADER)) res.header.set(REQUEST_ID_HEADER, meta.requestId);
    if (!res.stream) {
      settleCall(call, undefined);
      return res;
    }
    const fix = (err: unknown): ConnectError => normalizeError(err, req.signal, meta.requestId);
    const run =
      active === undefined
        ? <R>(fn: () => R): R => requestScope.run(meta, fn)
        : <R>(fn: () => R): R => requestScope.run(meta, () => context.with(active, fn));
    const settle = (error: unknown): void => settleCall(call, error);
    return { ...res, message: bindIterable(watchStream(normalizeStream(res.message, fix), req.signal, settle), run) };
  };
}

/** What the end of a call reports to (see {@link settleCall}). */
interface SettleState {
  g: { dec(): void };
  service: string;
  method: string;
  protocol: string;
  startedAt: number;
  bindings: Record<string, unknown>;
  span: Span | undefined;
  logger: Logger;
}

/** The end of a call: in-flight gauge, RPC metrics, the one log line, the span. */
function settleCall(c: SettleState, error: unknown): void {
  c.g.dec();
  recordRpc(c.service, c.method, error, (performance.now() - c.startedAt) / 1000);
  logRpc(c.logger, { service: c.service, method: c.method, protocol: c.protocol, startedAt: c.startedAt, error }, c.bindings);
  if (c.span !== undefined) endSpan(c.span, error, isServerFault);
}

/** `next(req)` with `active` as the OpenTelemetry context. */
function inContext<A, R>(active: Context, next: (arg: A) => R, arg: A): R {
  return context.with(active, next, undefined, arg);
}
