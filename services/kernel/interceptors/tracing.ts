import type { Interceptor } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import type { Attributes, Context, Span, TextMapGetter, TextMapSetter } from "@opentelemetry/api";
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { requestMetaKey } from "../context.js";
import { bindResponse, codeName, codeNumber, isServerFault, rpcName, rpcProtocol, settleRpc } from "./rpc-call.js";

/** Instrumentation scope of the kernel's RPC spans. */
export const TRACER_NAME = "nexus.kernel.rpc";

/** Reads W3C trace context (traceparent, tracestate, baggage) from Fetch API headers. */
export const headerGetter: TextMapGetter<Headers> = {
  keys: (carrier) => [...carrier.keys()],
  get: (carrier, key) => carrier.get(key) ?? undefined,
};

/** Writes W3C trace context into Fetch API headers. */
export const headerSetter: TextMapSetter<Headers> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

/** Ends an RPC span: its gRPC status code, and for failures (by `errorIsFailure`) ERROR status and the exception. */
export function endSpan(span: Span, error: unknown, errorIsFailure: (e: unknown) => boolean): void {
  span.setAttribute("rpc.grpc.status_code", codeNumber(error));
  if (error !== undefined) {
    span.setAttribute("rpc.connect_rpc.error_code", codeName(error));
    if (errorIsFailure(error)) {
      const ce = ConnectError.from(error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      // The cause of an internal error stays on the server: the span is server-side data.
      span.recordException(ce.cause instanceof Error ? ce.cause : ce);
    }
  }
  span.end();
}

/**
 * Server interceptor: one SERVER span per RPC, child of the caller's W3C `traceparent` (if
 * any), named `<service>/<method>`, with rpc.system ("grpc" or "connect_rpc"), rpc.service,
 * rpc.method and rpc.grpc.status_code. The handler (and each pull of a streaming response)
 * runs with the span active, so outgoing calls and events carry it on.
 *
 * Span status follows the OpenTelemetry RPC conventions for servers: ERROR for server faults
 * (internal, unknown, unavailable, deadline_exceeded, unimplemented, data_loss); caller
 * mistakes such as invalid_argument keep status UNSET but still record their code.
 */
export function tracingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const tracer = trace.getTracer(TRACER_NAME);
    const { service, method } = rpcName(req);
    const parent = propagation.extract(ROOT_CONTEXT, req.header, headerGetter);
    const attributes: Attributes = {
      "rpc.system": rpcProtocol(req.header) === "connect" ? "connect_rpc" : "grpc",
      "rpc.service": service,
      "rpc.method": method,
    };
    const meta = req.contextValues.get(requestMetaKey);
    if (meta) {
      attributes["nexus.request_id"] = meta.requestId;
      attributes["nexus.correlation_id"] = meta.correlationId;
    }
    const span = tracer.startSpan(`${service}/${method}`, { kind: SpanKind.SERVER, attributes }, parent);
    // No tracer provider (nothing exported) and no caller's trace: the span records nothing
    // and carries no context to pass on, so there is nothing to make active or to end.
    if (!span.isRecording() && !trace.isSpanContextValid(span.spanContext())) return next(req);
    const active: Context = trace.setSpan(parent, span);
    const run = <R>(fn: () => R): R => context.with(active, fn);
    const res = await settleRpc(
      () => run(() => next(req)),
      req.signal,
      (error) => endSpan(span, error, isServerFault),
    );
    return bindResponse(res, run);
  };
}

/**
 * Starts a CLIENT span for an outgoing call as a child of the active context and injects its
 * W3C trace context into `header`. Used by {@link clientInterceptor}; exported for clients
 * that are not Connect transports (e.g. NATS publishers use the same setter).
 */
export function startClientSpan(service: string, method: string, header: Headers): { span: Span; active: Context } {
  const tracer = trace.getTracer(TRACER_NAME);
  const parent = context.active();
  const span = tracer.startSpan(
    `${service}/${method}`,
    { kind: SpanKind.CLIENT, attributes: { "rpc.system": "grpc", "rpc.service": service, "rpc.method": method } },
    parent,
  );
  const active = trace.setSpan(parent, span);
  propagation.inject(active, header, headerSetter);
  return { span, active };
}

/** Ends a client span: on the client side every non-OK code is an error. */
export function endClientSpan(span: Span, error: unknown): void {
  endSpan(span, error, () => true);
}
