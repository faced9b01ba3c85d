import type { Interceptor } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import { CORRELATION_ID_HEADER, currentRequestMeta, REQUEST_ID_HEADER } from "../context.js";
import { newRequestId } from "./request-id.js";
import { bindResponse, rpcName, settleRpc } from "./rpc-call.js";
import { endClientSpan, startClientSpan } from "./tracing.js";

/**
 * Client interceptor for every outgoing Nexus call (service to service, CLI, SDK): carries
 * the current request's correlation id (`x-correlation-id`), gives the call its own
 * `x-request-id` (fresh, unless the caller set one, so each hop's logs have a unique id while
 * the correlation id ties them together), and wraps the call in a CLIENT span whose W3C
 * `traceparent` the server continues.
 */
export function clientInterceptor(): Interceptor {
  return (next) => async (req) => {
    const meta = currentRequestMeta();
    if (!req.header.has(REQUEST_ID_HEADER)) req.header.set(REQUEST_ID_HEADER, newRequestId());
    if (meta && !req.header.has(CORRELATION_ID_HEADER)) req.header.set(CORRELATION_ID_HEADER, meta.correlationId);
    const { service, method } = rpcName(req);
    const { span, active } = startClientSpan(service, method, req.header);
    const run = <R>(fn: () => R): R => context.with(active, fn);
    const res = await settleRpc(
      () => run(() => next(req)),
      req.signal,
      (error) => endClientSpan(span, error),
    );
    return bindResponse(res, run);
  };
}
