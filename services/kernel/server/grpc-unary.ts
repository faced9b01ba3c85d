import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import {
  compressionNegotiate,
  createAsyncIterable,
  createMethodSerializationLookup,
  encodeEnvelope,
  envelopeCompress,
  invokeUnaryImplementation,
} from "@connectrpc/connect/protocol";
import {
  grpcStatusOk,
  headerAcceptEncoding,
  headerContentType,
  headerEncoding,
  headerGrpcStatus,
  headerTimeout,
  parseContentType,
  parseTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
import type { HandlerOptions, UnaryFastPath, UnarySpec } from "./fast-path.js";
import { ReadyAnswer } from "./fast-path.js";

/**
 * A unary gRPC call served without connect's streaming pipeline, with connect's own parts.
 *
 * connect-es serves every gRPC call, unary ones too, as a stream: the request body goes
 * through four async generators (split, decompress, parse envelopes, then "exactly one
 * message") and the answer through four more (serialize, compress, join, catch). Their objects,
 * promises and queue rounds were about half of what a gRPC WhoAmI allocated (98 KB per call,
 * 50 KB without them; docs/performance.md), and most of what a unary gRPC call cost over a
 * Connect one.
 *
 * This handler does what connect's gRPC handler does for a unary call, in the same order and
 * with the same exported functions (content type, timeout, handler context, compression
 * negotiation, the request gate, the method's serialization with its size limits, the
 * interceptors and the implementation through `invokeUnaryImplementation`, trailer status),
 * on a body read whole. It takes only the plain case (the Node bridge, node-adapter.ts, hands
 * it HTTP/2 requests only): POST, a gRPC content type
 * (`application/grpc`, `+proto`, `+json`), no request compression, a valid or absent
 * `grpc-timeout`, and a body that is exactly one uncompressed envelope of at most
 * {@link FAST_MAX_MESSAGE} bytes (and within `readMaxBytes`). Anything else — and a body that
 * ends early or errors — goes to connect's own handler with the bytes already read put back in
 * front of the rest of the body, so every error of the protocol (a missing or extra message, an
 * incomplete envelope, a message over the limit, an unknown compression, a bad timeout) is
 * connect's, unchanged. grpc-unary.test.ts sends the same bytes to both and compares answers.
 *
 * One difference: connect runs the request gate before it reads the body; here a small body
 * is read first, because whether the call is plain is known only then. A refused call's body
 * is read (at most {@link FAST_MAX_MESSAGE} bytes, so a caller without credentials cannot make
 * the server hold more than that per stream), never parsed.
 */
export type GrpcUnaryHandler = UnaryFastPath;

/**
 * Largest message the fast path reads before the request gate: 16 KiB, one HTTP/2 DATA frame
 * at the default frame size. Unary requests are almost always smaller; a larger one goes to
 * connect's handler, which asks the gate first. It bounds what a caller without credentials
 * can make the server hold per stream before it is refused.
 */
export const FAST_MAX_MESSAGE = 16 * 1024;

/** The body as it was, for connect's handler: `chunks` already read, then the rest of `it`. */
function replay(chunks: readonly Uint8Array[], it: AsyncIterator<Uint8Array>): AsyncIterable<Uint8Array> {
  let i = 0;
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => (i < chunks.length ? Promise.resolve({ done: false, value: chunks[i++]! }) : it.next()),
      return: (value?: unknown) => it.return?.(value) ?? Promise.resolve({ done: true, value: undefined }),
    }),
  };
}

/** The envelope header at the start of `chunks` (at least 5 bytes): flags and declared length. */
function envelopeHead(chunks: readonly Uint8Array[], total: number): { flags: number; length: number } {
  const head = chunks[0]!.byteLength >= 5 ? chunks[0]! : Buffer.concat(chunks as Uint8Array[], total);
  return { flags: head[0]!, length: ((head[1]! << 24) >>> 0) + (head[2]! << 16) + (head[3]! << 8) + head[4]! };
}

export function createGrpcUnaryHandler(spec: UnarySpec, opt: HandlerOptions): GrpcUnaryHandler {
  const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
  const service = spec.method.parent;
  return async function grpcUnary(req, fallback) {
    const type = parseContentType(req.header.get(headerContentType));
    const encoding = req.header.get(headerEncoding);
    const timeout = parseTimeout(req.header.get(headerTimeout), opt.maxTimeoutMs);
    const body = req.body as AsyncIterable<Uint8Array>;
    if (type === undefined || req.method !== "POST" || (encoding !== null && encoding !== "identity") || timeout.error !== undefined) {
      return fallback(req);
    }
    // Read the body whole if it is one small uncompressed envelope. As soon as its header says
    // otherwise (or more bytes come than it promised), the rest goes to connect, which then sees
    // the body from its first byte.
    // connect starts the deadline before it reads the body: so does this, by counting the read.
    const readFrom = timeout.timeoutMs === undefined ? 0 : Date.now();
    const it = body[Symbol.asyncIterator]();
    const chunks: Uint8Array[] = [];
    let total = 0;
    let expected = -1;
    const max = Math.min(opt.readMaxBytes, FAST_MAX_MESSAGE);
    try {
      for (let r = await it.next(); r.done !== true; r = await it.next()) {
        chunks.push(r.value);
        total += r.value.byteLength;
        if (expected < 0 && total >= 5) {
          const head = envelopeHead(chunks, total);
          if (head.flags !== 0 || head.length > max) return fallback({ ...req, body: replay(chunks, it) });
          expected = 5 + head.length;
        }
        if (expected >= 0 && total > expected) return fallback({ ...req, body: replay(chunks, it) });
      }
    } catch (err) {
      const failed = { next: () => Promise.reject(err) } as AsyncIterator<Uint8Array>;
      return fallback({ ...req, body: replay(chunks, failed) });
    }
    // Ended: no envelope, or fewer bytes than promised.
    if (total !== expected) return fallback({ ...req, body: createAsyncIterable(chunks) });
    const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
    const payload = whole.subarray(5);

    const context = createHandlerContext({
      ...spec,
      service,
      requestMethod: req.method,
      protocolName: "grpc",
      timeoutMs: timeout.timeoutMs === undefined ? undefined : timeout.timeoutMs - (Date.now() - readFrom),
      shutdownSignal: opt.shutdownSignal,
      requestSignal: req.signal,
      requestHeader: req.header,
      url: req.url,
      responseHeader: { [headerContentType]: type.binary ? "application/grpc+proto" : "application/grpc+json" },
      responseTrailer: { [headerGrpcStatus]: grpcStatusOk },
      contextValues: req.contextValues,
    });
    const compression = compressionNegotiate(opt.acceptCompression, null, req.header.get(headerAcceptEncoding), headerAcceptEncoding);
    if (compression.response) context.responseHeader.set(headerEncoding, compression.response.name);
    let answer: Uint8Array | undefined;
    let failure: unknown;
    try {
      if (opt.requestGate !== undefined) await opt.requestGate(context);
      const input = serialization.getI(type.binary).parse(payload);
      const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
      const env = await envelopeCompress(
        { flags: 0, data: serialization.getO(type.binary).serialize(output) },
        compression.response,
        opt.compressMinBytes,
      );
      answer = encodeEnvelope(env.flags, env.data);
    } catch (e) {
      failure = e;
      setTrailerStatus(
        context.responseTrailer,
        e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e),
      );
    }
    // As connect's pipeline ends a call: its signal aborted, with the error if it failed.
    context.abort(failure);
    return {
      status: 200,
      header: context.responseHeader,
      trailer: context.responseTrailer,
      body: new ReadyAnswer(answer === undefined ? [] : [answer]),
    };
  };
}
