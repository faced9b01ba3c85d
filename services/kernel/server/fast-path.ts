import type { MethodImplSpec } from "@connectrpc/connect";
import type { UniversalServerRequest, UniversalServerResponse, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";

/**
 * A unary call served without connect's per-call machinery (grpc-unary.ts, connect-unary.ts):
 * it answers the request itself, or hands it to `fallback` (connect's own handler for the
 * method) — before it read anything, or with the bytes it read put back.
 */
export type UnaryFastPath = (
  req: UniversalServerRequest,
  fallback: (req: UniversalServerRequest) => Promise<UniversalServerResponse>,
) => Promise<UniversalServerResponse>;

/** connect's handler options, validated (limits, compression, interceptors, request gate). */
export type HandlerOptions = ReturnType<typeof validateUniversalHandlerOptions>;

/** A unary method's implementation as connect registers it. */
export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/**
 * The body of an answer built whole (by a unary fast path, or the server's rewrite of an error
 * answer, decode-errors.ts): its chunks, which the Node bridge (node-adapter.ts) writes without
 * iterating. It is still an async iterable, so anything else
 * reading a universal response reads it as usual.
 */
export class ReadyAnswer implements AsyncIterable<Uint8Array> {
  constructor(readonly chunks: readonly Uint8Array[]) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    let i = 0;
    return {
      next: () =>
        Promise.resolve(i < this.chunks.length ? { done: false, value: this.chunks[i++]! } : { done: true as const, value: undefined }),
    };
  }
}
