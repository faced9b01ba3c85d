import type { Interceptor } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { requestMetaKey } from "../context.js";
import { isDatabaseUnavailableError } from "../db/pg-error.js";
import { domainError } from "../errors.js";
import type { RpcResponse } from "./rpc-call.js";

/** RetryInfo sent with a database outage: long enough for a restart's first seconds, short enough to notice recovery. */
export const DATABASE_UNAVAILABLE_RETRY_MS = 1_000;

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** The UNAVAILABLE every connection-class database failure becomes (see isDatabaseUnavailableError). */
export function databaseUnavailableError(cause: unknown, requestId?: string): ConnectError {
  const message = `the database is unavailable; retry later${requestId ? ` (request id ${requestId})` : ""}`;
  return domainError("DEPENDENCY_UNAVAILABLE", message, { dependency: "database" }, { cause, retryAfterMs: DATABASE_UNAVAILABLE_RETRY_MS });
}

/** connect-es's message prefix for a binary request body protobuf-es could not parse. */
export const PARSE_BINARY = "parse binary:";

/** The error a client gets for a request body that does not decode (reason INVALID_ARGUMENT). */
export function decodeError(message: string): ConnectError {
  return domainError("INVALID_ARGUMENT", message, { cause: "request_decoding" });
}

/**
 * What the client may see of an error. ConnectErrors pass through (they were built to be
 * sent) — except connect-es's INTERNAL "parse binary: …" for a message of a request stream
 * that does not decode (the client's mistake, so INVALID_ARGUMENT) and an INTERNAL/UNKNOWN one whose cause is a database outage, which some code
 * wrapped without knowing better. A connection-class database failure (refused, terminated,
 * 57P01, 57P03, class 08, pool timeout) becomes UNAVAILABLE reason DEPENDENCY_UNAVAILABLE
 * (metadata `dependency: database`) with RetryInfo, so SDKs retry instead of giving up on an
 * INTERNAL. An abort caused by the call's own signal becomes the signal's reason (deadline
 * exceeded, canceled, server shutting down). Anything else becomes INTERNAL with reason
 * INTERNAL and a generic message carrying the request id; the original error is kept as
 * `cause`, which is logged by the logging interceptor and never sent.
 */
export function normalizeError(err: unknown, signal: AbortSignal, requestId?: string): ConnectError {
  if (err instanceof ConnectError) {
    if (err.code === Code.Internal && err.rawMessage.startsWith(PARSE_BINARY)) return decodeError(err.rawMessage);
    if ((err.code === Code.Internal || err.code === Code.Unknown) && isDatabaseUnavailableError(err.cause)) {
      return databaseUnavailableError(err.cause, requestId);
    }
    return err;
  }
  if (signal.aborted && (isAbortError(err) || err === signal.reason)) {
    return signal.reason instanceof ConnectError ? signal.reason : ConnectError.from(err);
  }
  if (isDatabaseUnavailableError(err)) return databaseUnavailableError(err, requestId);
  const message = requestId ? `internal error (request id ${requestId})` : "internal error";
  return domainError("INTERNAL", message, {}, { cause: err });
}

/** `source` with every error it throws replaced by `fix(error)`. */
export async function* normalizeStream<T>(source: AsyncIterable<T>, fix: (err: unknown) => ConnectError): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw fix(err);
  }
}

/**
 * Server interceptor: any non-ConnectError thrown by a handler (or by its stream) becomes
 * INTERNAL with a generic message — or UNAVAILABLE with RetryInfo when it is a database outage;
 * its cause is logged, never sent.
 */
export function errorNormalizingInterceptor(): Interceptor {
  return (next) => async (req) => {
    const fix = (err: unknown) => normalizeError(err, req.signal, req.contextValues.get(requestMetaKey)?.requestId);
    let res: RpcResponse;
    try {
      res = await next(req);
    } catch (err) {
      throw fix(err);
    }
    if (!res.stream) return res;
    return { ...res, message: normalizeStream(res.message, fix) };
  };
}
