import { Code, ConnectError, createHandlerContext } from "@connectrpc/connect";
import {
  compressionNegotiate,
  createMethodSerializationLookup,
  invokeUnaryImplementation,
  mergeNonProtocolHeaders,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
  headerContentType,
  headerTimeout,
  headerUnaryAcceptEncoding,
  headerUnaryContentLength,
  headerUnaryEncoding,
  parseContentType,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import type { HandlerOptions, UnaryFastPath, UnarySpec } from "./fast-path.js";
import { ReadyAnswer } from "./fast-path.js";

/**
 * A unary call of the Connect protocol (POST, `application/json` or `application/proto`)
 * served with connect's own parts, without the per-call work of connect's handler that no
 * caller sees.
 *
 * connect's unary handler (protocol-connect/handler-factory.js) parses the request URL with
 * `new URL` for every call (it needs the query only for GET), reads the body through
 * `readAllBytes` (a down-levelled async iteration), copies the answer's headers into a new
 * `Headers` to add the trailers, and hands the answer back as a down-levelled async generator
 * of one chunk. Together that was about a tenth of an authenticated unary call over HTTP/1.1
 * (docs/performance.md, ninth pass).
 *
 * This handler does what connect's does for a POST, in the same order: content type, timeout,
 * handler context, compression negotiation, the request gate (before the body is read, as in
 * connect), the body with its `Content-Length` and `readMaxBytes` checks (the same errors as
 * `readAllBytes`), decompression, the method's serialization, the interceptors and the
 * implementation through `invokeUnaryImplementation`, an error as connect writes it
 * (`errorToJsonBytes`, `codeToHttpStatus`, the error's metadata as headers), response
 * compression, trailers as `trailer-` headers and `Content-Length`. The answer is a
 * {@link ReadyAnswer}, which the Node bridge (node-adapter.ts) writes without iterating.
 *
 * Everything this handler does not take goes to connect's handler before anything is read:
 * GET requests, streaming or unknown content types, an unknown request compression, a bad
 * `connect-timeout-ms`, and servers that require the `connect-protocol-version` header. So
 * every error decided from the request's headers is connect's own. connect-unary.test.ts sends
 * the same requests to a server with and without this path and compares the answers.
 */
export type ConnectUnaryHandler = UnaryFastPath;

/**
 * The body whole, as connect's `readAllBytes` reads it (same checks, same errors): with a
 * `Content-Length` it must be at most `readMaxBytes` (checked before reading) and exactly that
 * long; without one, at most `readMaxBytes`. Stopping early ends the body's iterator (`return`),
 * as connect's `for await` does.
 */
async function readBody(body: AsyncIterable<Uint8Array>, readMaxBytes: number, lengthHint: string | null): Promise<Uint8Array> {
  const n = lengthHint === null ? Number.NaN : Number.parseInt(lengthHint, 10);
  const hint = Number.isSafeInteger(n) && n >= 0 ? n : -1;
  if (hint > readMaxBytes) {
    throw new ConnectError(`message size ${hint} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
  }
  const it = body[Symbol.asyncIterator]();
  const chunks: Uint8Array[] = [];
  let total = 0;
  // A body that fails is not returned (as a `for await` whose `next` throws); one this stops reading is.
  const stop = async (error: ConnectError): Promise<never> => {
    await it.return?.();
    throw error;
  };
  for (let r = await it.next(); r.done !== true; r = await it.next()) {
    total += r.value.byteLength;
    if (hint >= 0 && total > hint) {
      await stop(new ConnectError(`protocol error: promised ${hint} bytes, received ${total}`, Code.InvalidArgument));
    }
    if (hint < 0 && total > readMaxBytes) {
      await stop(new ConnectError(`message size is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
    }
    chunks.push(r.value);
  }
  if (hint >= 0 && total < hint) {
    throw new ConnectError(`protocol error: promised ${hint} bytes, received ${total}`, Code.InvalidArgument);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total);
}

export function createConnectUnaryHandler(spec: UnarySpec, opt: HandlerOptions): ConnectUnaryHandler {
  const serialization = createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt);
  const service = spec.method.parent;
  return async function connectUnary(req, fallback) {
    if (req.method !== "POST" || opt.requireConnectProtocolHeader) return fallback(req);
    const type = parseContentType(req.header.get(headerContentType));
    if (type === undefined || type.stream) return fallback(req);
    const timeout = parseTimeout(req.header.get(headerTimeout), opt.maxTimeoutMs);
    if (timeout.error !== undefined) return fallback(req);
    const compression = compressionNegotiate(
      opt.acceptCompression,
      req.header.get(headerUnaryEncoding),
      req.header.get(headerUnaryAcceptEncoding),
      headerUnaryAcceptEncoding,
    );
    if (compression.error !== undefined) return fallback(req);

    const context = createHandlerContext({
      ...spec,
      service,
      requestMethod: req.method,
      protocolName: "connect",
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: opt.shutdownSignal,
      requestSignal: req.signal,
      requestHeader: req.header,
      url: req.url,
      responseHeader: { [headerContentType]: type.binary ? contentTypeUnaryProto : contentTypeUnaryJson },
      contextValues: req.contextValues,
    });
    let status = 200;
    let body: Uint8Array;
    try {
      // As connect: the gate before the body is read, so a refused request is never read or parsed.
      if (opt.requestGate !== undefined) await opt.requestGate(context);
      let bytes = await readBody(req.body as AsyncIterable<Uint8Array>, opt.readMaxBytes, req.header.get(headerUnaryContentLength));
      if (compression.request) bytes = await compression.request.decompress(bytes, opt.readMaxBytes);
      const input = serialization.getI(type.binary).parse(bytes);
      const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
      body = serialization.getO(type.binary).serialize(output);
    } catch (e) {
      context.abort(e);
      const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
      status = codeToHttpStatus(error.code);
      context.responseHeader.set(headerContentType, contentTypeUnaryJson);
      if (!error.isWireError) mergeNonProtocolHeaders(context.responseHeader, error.metadata);
      body = errorToJsonBytes(error, opt.jsonOptions);
    } finally {
      context.abort();
    }
    if (compression.response && body.byteLength >= opt.compressMinBytes) {
      body = await compression.response.compress(body);
      context.responseHeader.set(headerUnaryEncoding, compression.response.name);
    }
    // Trailers travel as `trailer-` headers (connect's trailerMux, without copying the headers first).
    const header = context.responseHeader;
    context.responseTrailer.forEach((value, key) => header.append(`trailer-${key}`, value));
    header.set(headerUnaryContentLength, body.byteLength.toString(10));
    return { status, header, body: new ReadyAnswer([body]) };
  };
}
