import { Code, ConnectError } from "@connectrpc/connect";
import type { Interceptor } from "@connectrpc/connect";
import { requestMetaKey } from "../context.js";
import { domainError } from "../errors.js";
import type { RpcResponse } from "./rpc-call.js";

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}

/** connect-es's message prefix for a binary request body protobuf-es could not parse. */
export const PARSE_BINARY = "parse binary:";

/** The error a client gets for a request body that does not decode (reason INVALID_ARGUMENT). */
export function decodeError(message: string): ConnectError {
  return domainError("INVALID_ARGUMENT", message, { cause: "request_decoding" });
}

/**
 * What the client may see of an error. ConnectErrors pass through (they were built to be
 * sent), except connect-es's INTERNAL "parse binary: …" for a message of a request stream
 * that does not decode: the client's mistake, so INVALID_ARGUMENT. An abort caused by the call's own signal becomes the signal's reason (deadline
 * exceeded, canceled, server shutting down). Anything else becomes INTERNAL with reason
 * INTERNAL and a generic message carrying the request id; the original error is kept as
 * `cause`, which is logged by the logging interceptor and never sent.
 */
export function normalizeError(err: unknown, signal: AbortSignal, requestId?: string): ConnectError {
  if (err instanceof ConnectError) {
    return err.code === Code.Internal && err.rawMessage.startsWith(PARSE_BINARY) ? decodeError(err.rawMessage) : err;
  }
  if (signal.aborted && (isAbortError(err) || err === signal.reason)) {
    return signal.reason instanceof ConnectError ? signal.reason : ConnectError.from(err);
  }
  const message = requestId ? `internal error (request id ${requestId})` : "internal error";
  return domainError("INTERNAL", message, {}, { cause: err });
}

async function* normalizeStream<T>(source: AsyncIterable<T>, fix: (err: unknown) => ConnectError): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw fix(err);
  }
}

/**
 * Server interceptor: any non-ConnectError thrown by a handler (or by its stream) becomes
 * INTERNAL with a generic message; its cause is logged, never sent.
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
