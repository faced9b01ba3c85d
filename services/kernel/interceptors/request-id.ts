import { randomUUID } from "node:crypto";
import type { ContextValues, Interceptor } from "@connectrpc/connect";
import { ConnectError } from "@connectrpc/connect";
import type { RequestMeta } from "../context.js";
import { CORRELATION_ID_HEADER, REQUEST_ID_HEADER, requestMetaKey, requestScope } from "../context.js";
import { bindResponse } from "./rpc-call.js";

/**
 * Ids a caller may choose: 1–128 characters of letters, digits and `._:-` (UUIDs, ULIDs,
 * W3C trace ids, hex). Anything else is replaced, so ids are safe in logs, headers and
 * subjects.
 */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** True when an incoming id header value may be used as is. */
export function isSaneId(value: string | null | undefined): value is string {
  return typeof value === "string" && SANE_ID.test(value);
}

/** A fresh request id (UUID v4). */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * The ids of an inbound request: the caller's `x-request-id` / `x-correlation-id` when sane,
 * otherwise a fresh request id, and the request id as correlation id.
 */
export function requestMetaFromHeaders(header: Headers): RequestMeta {
  return requestMetaFromValues(header.get(REQUEST_ID_HEADER) ?? undefined, header.get(CORRELATION_ID_HEADER) ?? undefined);
}

/** {@link requestMetaFromHeaders} from the two header values themselves (no Headers object to build per call). */
export function requestMetaFromValues(requestIdHeader: string | undefined, correlationIdHeader: string | undefined): RequestMeta {
  const incoming = requestIdHeader?.trim();
  const requestId = isSaneId(incoming) ? incoming : newRequestId();
  const correlation = correlationIdHeader?.trim();
  return { requestId, correlationId: isSaneId(correlation) ? correlation : requestId };
}

/** The request's ids from context values, creating (and storing) them from headers if absent. */
export function ensureRequestMeta(values: ContextValues, header: Headers): RequestMeta {
  let meta = values.get(requestMetaKey);
  if (meta === undefined) {
    meta = requestMetaFromHeaders(header);
    values.set(requestMetaKey, meta);
  }
  return meta;
}

/**
 * Server interceptor (outermost): gives every RPC a request id and correlation id (taken from
 * the caller when sane), stores them under `requestMetaKey`, echoes `x-request-id` on the
 * response (also on errors), and runs the handler — including every pull of a streaming
 * response — inside `requestScope`, so `currentRequestMeta()` works anywhere below.
 */
export function requestIdInterceptor(): Interceptor {
  return (next) => async (req) => {
    const meta = ensureRequestMeta(req.contextValues, req.header);
    const run = <R>(fn: () => R): R => requestScope.run(meta, fn);
    try {
      const res = await run(() => next(req));
      if (!res.header.has(REQUEST_ID_HEADER)) res.header.set(REQUEST_ID_HEADER, meta.requestId);
      return bindResponse(res, run);
    } catch (err) {
      if (err instanceof ConnectError && !err.metadata.has(REQUEST_ID_HEADER)) {
        err.metadata.set(REQUEST_ID_HEADER, meta.requestId);
      }
      throw err;
    }
  };
}
