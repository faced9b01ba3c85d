import type { ContextValues } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalClientFn, UniversalClientResponse, UniversalHandler } from "@connectrpc/connect/protocol";
import { createAsyncIterable } from "@connectrpc/connect/protocol";

/** Options of {@link createInProcessClient}. */
export interface InProcessClientOptions {
  /** The server's handlers by request path (what its Node listener routes to). */
  handlers: ReadonlyMap<string, UniversalHandler>;
  /** The context values of a new call, from its request headers (what the Node listener derives from the request). */
  contextValues: (header: Headers) => ContextValues;
  /**
   * Admits a call as the server admits a request: throws (UNAVAILABLE) when the server does not
   * serve, else counts the call in flight and returns what ends that count (called exactly once).
   */
  admit: () => () => void;
  /** Called with a response's trailers once its body has ended (gRPC), as the Node listener does before writing them. */
  beforeTrailers?: (trailer: Headers) => void;
}

/** A promise that rejects with the signal's reason once it aborts (the call's client went away). */
function raceSignal<T>(signal: AbortSignal, promise: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener("abort", onAbort!));
}

/**
 * An HTTP client for connect's transports that calls a server's own handlers in this process,
 * without a socket: the peer calls of services hosted in the same process (`nexus dev`, a
 * `nexus serve` of several services; services/runtime/peers.ts). The call goes through
 * everything a call over the network goes through on the server — the request gate
 * (authentication), the interceptors, validation, the same serialization of request and
 * answer, deadlines — and is counted in flight for graceful shutdown. What it skips is HTTP/2:
 * framing, the session and the loopback socket, which on `nexus dev` were about half of Run's
 * overhead before its first token (three peer calls; docs/performance.md).
 *
 * Unlike connect's `createUniversalHandlerClient`, the trailers are handed over as they are
 * when the body ends, not copied when the headers come: a gRPC error raised after the first
 * message of a stream arrives in the trailers. (With connect's client and the gRPC protocol,
 * such a stream ended as if it had succeeded, tried with connect 2.2.0; its
 * `createRouterTransport` speaks the Connect protocol, whose stream errors are in the body.)
 */
export function createInProcessClient(options: InProcessClientOptions): UniversalClientFn {
  const { handlers, contextValues, admit, beforeTrailers } = options;
  return async (req): Promise<UniversalClientResponse> => {
    const path = new URL(req.url).pathname;
    const handler = handlers.get(path);
    if (handler === undefined) throw new ConnectError(`no RPC ${path} is served in this process`, Code.Unimplemented);
    const signal = req.signal ?? new AbortController().signal;
    const settle = admit();
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      settle();
    };
    let res: Awaited<ReturnType<UniversalHandler>>;
    try {
      res = await raceSignal(
        signal,
        handler({
          httpVersion: "2.0",
          method: req.method,
          url: req.url,
          header: req.header,
          body: req.body ?? createAsyncIterable([]),
          signal,
          contextValues: contextValues(req.header),
        }),
      );
    } catch (err) {
      done();
      throw err;
    }
    // Not an answer a gRPC client reads the body of (the transport throws on the status).
    if (res.status !== 200) done();
    const trailer = res.trailer ?? new Headers();
    const source = res.body ?? createAsyncIterable<Uint8Array>([]);
    const body: AsyncIterable<Uint8Array> = {
      [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
        const it = source[Symbol.asyncIterator]();
        const wrapped: AsyncIterator<Uint8Array> = {
          async next() {
            try {
              const next = await raceSignal(signal, it.next());
              if (next.done === true) {
                beforeTrailers?.(trailer);
                done();
              }
              return next;
            } catch (err) {
              done();
              throw err;
            }
          },
          async return(value?: unknown) {
            try {
              await it.return?.(value);
            } finally {
              done();
            }
            return { done: true, value: value as undefined };
          },
        };
        // A client that fails while reading (a bad message, an error in the trailers) hands its
        // error to the answer, as connect's own in-memory client does.
        const fail = it.throw;
        if (fail !== undefined) {
          wrapped.throw = async (err?: unknown) => {
            try {
              return await fail.call(it, err);
            } finally {
              done();
            }
          };
        }
        return wrapped;
      },
    };
    return { status: res.status, header: new Headers(res.header), trailer, body };
  };
}
