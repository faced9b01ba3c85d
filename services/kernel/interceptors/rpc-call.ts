import type { StreamRequest, StreamResponse, UnaryRequest, UnaryResponse } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";

/**
 * What every kernel interceptor needs to know about a call, and how to see it end: for a
 * streaming response the RPC is over when the last message was sent (or the stream failed),
 * not when the handler returned its iterable.
 */

/** A request as interceptors see it. */
export type RpcRequest = UnaryRequest | StreamRequest;
/** A response as interceptors see it. */
export type RpcResponse = UnaryResponse | StreamResponse;

/** `service` (full name, e.g. "nexus.auth.v1.AuthService") and `method` (e.g. "CreateTenant"). */
export interface RpcName {
  service: string;
  method: string;
}

/** The RPC's service and method names, as used in logs, metrics and spans. */
export function rpcName(req: RpcRequest): RpcName {
  return { service: req.service.typeName, method: req.method.name };
}

/** Protocol of an inbound call, from its content type: "grpc", "grpc_web" or "connect". */
export function rpcProtocol(header: Headers): "grpc" | "grpc_web" | "connect" {
  const ct = header.get("content-type") ?? "";
  if (ct.startsWith("application/grpc-web")) return "grpc_web";
  if (ct.startsWith("application/grpc")) return "grpc";
  return "connect";
}

/** The Connect code name of an outcome: "ok", "invalid_argument", "internal", ... */
export function codeName(error: unknown): string {
  if (error === undefined) return "ok";
  return codeToString(ConnectError.from(error).code);
}

/** The numeric gRPC code of an outcome (0 = OK). */
export function codeNumber(error: unknown): number {
  if (error === undefined) return 0;
  return ConnectError.from(error).code;
}

/**
 * Codes that mean the server (or something behind it) failed, as opposed to a caller
 * mistake or an expected refusal. Used for log levels and span status.
 */
export function isServerFault(error: unknown): boolean {
  if (error === undefined) return false;
  const code = ConnectError.from(error).code;
  return (
    code === Code.Unknown ||
    code === Code.Internal ||
    code === Code.DataLoss ||
    code === Code.Unimplemented ||
    code === Code.Unavailable ||
    code === Code.DeadlineExceeded
  );
}

/**
 * Runs `call` and reports once how the RPC ended. A unary response settles when `call`
 * resolves; a streaming response settles when its iterable is exhausted, fails, or is
 * abandoned (the peer went away: reported as the abort reason of `signal`, else canceled).
 */
export async function settleRpc(
  call: () => Promise<RpcResponse>,
  signal: AbortSignal,
  onSettled: (error: unknown) => void,
): Promise<RpcResponse> {
  let res: RpcResponse;
  try {
    res = await call();
  } catch (err) {
    onSettled(err);
    throw err;
  }
  if (!res.stream) {
    onSettled(undefined);
    return res;
  }
  return { ...res, message: watchStream(res.message, signal, onSettled) };
}

/** `source`, reporting through `onSettled` once how the stream ended (see {@link settleRpc}). */
export async function* watchStream<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal,
  onSettled: (error: unknown) => void,
): AsyncGenerator<T> {
  let settled = false;
  try {
    for await (const m of source) yield m;
    settled = true;
    onSettled(undefined);
  } catch (err) {
    settled = true;
    onSettled(err);
    throw err;
  } finally {
    if (!settled) {
      onSettled(
        signal.aborted && signal.reason instanceof ConnectError
          ? signal.reason
          : new ConnectError("stream abandoned by the peer", Code.Canceled),
      );
    }
  }
}

/**
 * Makes every step of an async iterable run inside `run` (an AsyncLocalStorage or
 * OpenTelemetry context). A streaming handler's generator body executes when the response is
 * pulled, far from the interceptor; binding the pulls keeps request ids and spans visible.
 */
export function bindIterable<T>(source: AsyncIterable<T>, run: <R>(fn: () => R) => R): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = run(() => source[Symbol.asyncIterator]());
      return {
        next: (...args: [] | [unknown]) => run(() => it.next(...args)),
        return: (value?: unknown) =>
          run(() => (it.return ? it.return(value) : Promise.resolve({ done: true as const, value: value as T }))),
        throw: (error?: unknown) => run(() => (it.throw ? it.throw(error) : Promise.reject(error))),
      };
    },
  };
}

/** The response with its message stream bound to `run` (unary responses pass unchanged). */
export function bindResponse(res: RpcResponse, run: <R>(fn: () => R) => R): RpcResponse {
  if (!res.stream) return res;
  return { ...res, message: bindIterable(res.message, run) };
}
