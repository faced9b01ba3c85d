import type { OutgoingHttpHeaders } from "node:http";
import http2 from "node:http2";
import type { ConnectRouter, ConnectRouterOptions, ContextValues } from "@connectrpc/connect";
import { Code, ConnectError, createConnectRouter } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Logger } from "pino";
import { ReadyAnswer } from "./fast-path.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { plain, webHeadersOf } from "./node-http.js";
import type { UnaryPaths } from "./unary-paths.js";
import { recordUnaryPaths } from "./unary-paths.js";

/**
 * The server's bridge between Node's HTTP servers and connect's universal handlers: what
 * connect-node's `connectNodeAdapter` does (same routing, same request and response
 * semantics), with less work per call. Measured on the hot path (docs/performance.md), the
 * stock bridge spent a good part of a unary call on bookkeeping no caller sees:
 *
 * - the end of every call aborted the request's AbortController without a reason, which
 *   builds a DOMException and captures a stack trace each time; here a call that ended
 *   normally aborts with one shared AbortError (same name, same message), and a call that
 *   ended by a client's reset or a socket error aborts with that error, as before;
 * - the request URL was parsed and re-serialised (`new URL(...)`); here it is put together
 *   from the same parts (connect parses it again only for Connect GET requests);
 * - the body was a (down-levelled) async generator around the request's own async iterator,
 *   itself a generator with an end-of-stream watcher; here it is read from the stream directly
 *   ({@link requestBody}: stopping early still destroys an HTTP/1.1 request and leaves an
 *   HTTP/2 stream to the server's drain, server.ts);
 * - every chunk written made a promise and two listeners, and the end of the response a
 *   third listener and a promise that never settled on HTTP/1.1; here a write waits only
 *   when Node asks it to (`write()` returned false);
 * - JSON answers were encoded to UTF-8 with a TextEncoder, which allocates a new ArrayBuffer
 *   for each; here {@link JSON_UTF8} copies a small answer into Node's shared buffer pool;
 * - a unary gRPC call over HTTP/2 went through connect's streaming pipeline (eight async
 *   generators); here a plain one is served by grpc-unary.ts, with connect's handler for
 *   everything else;
 * - a unary Connect call parsed its URL, read its body through an async iteration, copied its
 *   answer's headers and came back as an async generator of one chunk; here a POST is served
 *   by connect-unary.ts (GET and anything unusual by connect's handler), and the answers of
 *   both paths ({@link ReadyAnswer}) are written without iterating.
 *
 * Handler failures that are not an aborted call go to the logger (connect-node wrote them
 * with console.error).
 */
export interface NodeAdapterOptions extends ConnectRouterOptions {
  routes: (router: ConnectRouter) => void;
  /** The context values of a new call (request meta, the socket's address). */
  contextValues?: (req: NodeRequest) => ContextValues;
  /**
   * Applied to every RPC's answer before it is written, of connect's handlers and of the unary
   * fast paths alike (the server's rewrite of decoding errors, decode-errors.ts). The handlers
   * in {@link NodeAdapter.handlers} have it too.
   */
  rewriteAnswer?: (res: UniversalServerResponse) => UniversalServerResponse | Promise<UniversalServerResponse>;
  /** Called with a response's HTTP trailers (gRPC) right before they are written. */
  beforeTrailers?: (trailer: Headers) => void;
  /**
   * Unary calls without connect's per-call machinery: gRPC over HTTP/2 (grpc-unary.ts) and
   * Connect POST requests (connect-unary.ts). Default true; false serves every call with
   * connect's handlers (tests compare the two).
   */
  unaryFastPath?: boolean;
  logger: Logger;
}

/**
 * The UTF-8 encoder of Connect JSON answers: `Buffer.from` copies a string under 4 KiB into
 * Node's shared 8 KiB pool, where TextEncoder (connect's default) allocates an ArrayBuffer per
 * answer (0.1 against 1 µs for a 1.4 KiB answer measured alone, docs/performance.md). connect
 * reads it from `jsonOptions.textEncoder`, an option its serialization honours but its router
 * type does not declare (node-adapter.test.ts checks that it is still used).
 */
export const JSON_UTF8 = { encode: (text = ""): Uint8Array<ArrayBuffer> => Buffer.from(text, "utf8") };

/** The reason a call's request signal carries when the call simply ended: one shared AbortError. */
const REQUEST_ENDED = new DOMException("This operation was aborted", "AbortError");

/** HTTP/2 reset codes a client's cancellation or a broken stream arrives with, as connect-node maps them. */
const H2 = http2.constants;
const RESET_CODES = new Map<number, Code>([
  [H2.NGHTTP2_PROTOCOL_ERROR, Code.Internal],
  [H2.NGHTTP2_INTERNAL_ERROR, Code.Internal],
  [H2.NGHTTP2_FLOW_CONTROL_ERROR, Code.Internal],
  [H2.NGHTTP2_SETTINGS_TIMEOUT, Code.Internal],
  [H2.NGHTTP2_FRAME_SIZE_ERROR, Code.Internal],
  [H2.NGHTTP2_COMPRESSION_ERROR, Code.Internal],
  [H2.NGHTTP2_CONNECT_ERROR, Code.Internal],
  [H2.NGHTTP2_REFUSED_STREAM, Code.Unavailable],
  [H2.NGHTTP2_CANCEL, Code.Canceled],
  [H2.NGHTTP2_ENHANCE_YOUR_CALM, Code.ResourceExhausted],
  [H2.NGHTTP2_INADEQUATE_SECURITY, Code.PermissionDenied],
  [H2.NGHTTP2_HTTP_1_1_REQUIRED, Code.PermissionDenied],
]);
const RESET_NAMES = new Map<number, string>(
  Object.entries(H2)
    .filter(([name, value]) => name.startsWith("NGHTTP2_") && typeof value === "number" && RESET_CODES.has(value))
    .map(([name, value]) => [value as number, name.slice("NGHTTP2_".length)]),
);

/** The error an HTTP/2 stream closed with (undefined for NO_ERROR and STREAM_CLOSED, as in connect-node). */
function resetError(rstCode: number): ConnectError | undefined {
  const code = RESET_CODES.get(rstCode);
  if (code === undefined) return undefined;
  return new ConnectError(`http/2 stream closed with error code ${RESET_NAMES.get(rstCode)} (0x${rstCode.toString(16)})`, code);
}

/** Node stream/socket errors as connect-node classifies them: a client that went away is ABORTED. */
export function errorFromNodeReason(reason: unknown): ConnectError {
  let code = Code.Internal;
  const codes = new Set<string>();
  for (let r: unknown = reason, depth = 0; r instanceof Error && depth < 8; r = (r as { cause?: unknown }).cause, depth++) {
    const c = (r as { code?: unknown }).code;
    if (typeof c === "string") codes.add(c);
  }
  if (
    codes.has("ERR_STREAM_WRITE_AFTER_END") ||
    codes.has("ERR_STREAM_DESTROYED") ||
    codes.has("ERR_HTTP2_INVALID_STREAM") ||
    codes.has("ECONNRESET")
  ) {
    code = Code.Aborted;
  } else if (codes.has("ETIMEDOUT") || codes.has("ENOTFOUND") || codes.has("EAI_AGAIN") || codes.has("ECONNREFUSED")) {
    code = Code.Unavailable;
  }
  const error = ConnectError.from(reason, code);
  if (error !== reason) error.cause = reason;
  return error;
}

/** fetch Headers as Node's outgoing headers (repeated names as arrays), as connect-node converts them. */
function nodeHeaders(header: Headers | undefined): OutgoingHttpHeaders | undefined {
  if (header === undefined) return undefined;
  const o: OutgoingHttpHeaders = Object.create(null) as OutgoingHttpHeaders;
  header.forEach((value, key) => {
    const existing = o[key];
    if (existing === undefined) o[key] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else o[key] = [String(existing), value];
  });
  return o;
}

type AnyResponse = NodeResponse & {
  write(chunk: Uint8Array): boolean;
  writeHead(status: number, headers?: OutgoingHttpHeaders): unknown;
  addTrailers(headers: OutgoingHttpHeaders): void;
  end(chunk?: Uint8Array): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
  readonly errored?: Error | null;
  readonly destroyed: boolean;
};

/** What a write to a response the client already closed fails with (classified ABORTED). */
function streamDestroyed(): Error {
  return Object.assign(new Error("the response stream closed while writing"), { code: "ERR_STREAM_DESTROYED" });
}

/** What {@link onFirst} listens on: a Node request or response. */
interface Emitter {
  on(event: string, listener: (arg: unknown) => void): unknown;
  off(event: string, listener: (arg: unknown) => void): unknown;
}

/**
 * Listens for whichever of `events` `emitter` emits first: all the listeners are removed, then
 * `settle` runs with that event and its argument.
 */
function onFirst(emitter: Emitter, events: readonly string[], settle: (event: string, arg: unknown) => void): void {
  const listeners = events.map((event) => (arg: unknown) => {
    for (let i = 0; i < events.length; i++) emitter.off(events[i]!, listeners[i]!);
    settle(event, arg);
  });
  for (let i = 0; i < events.length; i++) emitter.on(events[i]!, listeners[i]!);
}

const DRAIN_EVENTS = ["drain", "error", "close"] as const;

/** Waits for 'drain' after a write Node asked to wait on; an error or a close first rejects. */
function drained(res: AnyResponse): Promise<void> {
  // Closed already (the client went away): no 'drain' or 'close' is coming.
  if (res.destroyed || (res as { closed?: boolean }).closed === true) {
    return Promise.reject(streamDestroyed());
  }
  return new Promise((resolve, reject) =>
    onFirst(res, DRAIN_EVENTS, (event, arg) => {
      if (event === "drain") resolve();
      else reject(event === "error" ? arg : streamDestroyed());
    }),
  );
}

/** Every chunk of a body, read to its end. */
async function readToEnd(it: AsyncIterator<Uint8Array>): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (let chunk = await it.next(); chunk.done !== true; chunk = await it.next()) chunks.push(chunk.value);
  return chunks;
}

/**
 * Writes a universal response to Node's response: headers after the first chunk (so handlers
 * can still set them), then the body and trailers. `single`: the RPC answers with one message
 * (unary, client streaming), so the body is read whole and sent with `end()`.
 */
async function writeResponse(
  uRes: UniversalServerResponse,
  nodeRes: NodeResponse,
  beforeTrailers: ((trailer: Headers) => void) | undefined,
  single: boolean,
  call: CallState,
): Promise<void> {
  const res = nodeRes as AnyResponse;
  // An answer built whole (a fast path's, a rewritten error) has its chunks already: no iterator.
  const ready = uRes.body instanceof ReadyAnswer ? uRes.body.chunks : undefined;
  const it = ready === undefined ? uRes.body?.[Symbol.asyncIterator]() : undefined;
  let isWriteError = false;
  /** The chunk `end()` sends: the last of a one-message answer. */
  let last: Uint8Array | undefined;
  try {
    if (ready !== undefined || (it !== undefined && single)) {
      // One answer message: nothing is gained by sending part of it early. Read the body to its
      // end, then send headers and body with one `end()` (a `write()` before it corks the socket
      // and uncorks it in a nextTick, per call). gRPC-Web adds its trailer frame as a chunk.
      const chunks = ready ?? (await readToEnd(it!));
      call.answered = true;
      isWriteError = true;
      if (res.errored) throw res.errored;
      if (res.destroyed) throw streamDestroyed();
      last = chunks[chunks.length - 1];
      res.writeHead(uRes.status, nodeHeaders(uRes.header));
      for (let i = 0; i < chunks.length - 1; i++) res.write(chunks[i]!);
    } else if (it !== undefined) {
      let chunk = await it.next();
      isWriteError = true;
      res.writeHead(uRes.status, nodeHeaders(uRes.header));
      isWriteError = false;
      for (; chunk.done !== true; chunk = await it.next()) {
        isWriteError = true;
        if (res.errored) throw res.errored;
        if (res.destroyed) throw streamDestroyed();
        if (!res.write(chunk.value)) await drained(res);
        isWriteError = false;
      }
      call.answered = true;
    }
    if (!res.headersSent) res.writeHead(uRes.status, nodeHeaders(uRes.header));
    if (uRes.trailer) {
      beforeTrailers?.(uRes.trailer);
      res.addTrailers(nodeHeaders(uRes.trailer)!);
    }
    res.end(last);
  } catch (e) {
    // A failed write is reported to the handler (its stream sees the error).
    if (isWriteError) it?.throw?.(e).catch(() => {});
    throw errorFromNodeReason(e);
  } finally {
    // A body read to its end needs no return() (for connect's generators, another promise and
    // queue round per call).
    if (!call.answered) it?.return?.().catch(() => {});
  }
}

/**
 * Where a call is, for the end of its request. connect aborts the handler's signal itself once
 * the response body is read to its end, and unlinks it from the request's signal. Aborting the
 * request's signal when the stream closes after that reaches no one (another Event built and
 * dispatched per call), so it is aborted only while the call is still running: a client that
 * goes away or a broken stream.
 */
interface CallState {
  answered: boolean;
}

const BODY_EVENTS = ["readable", "end", "error", "close"] as const;

/** What Node's stream iterator rejects with when a stream closes before its end. */
function prematureClose(): Error {
  return Object.assign(new Error("Premature close"), { code: "ERR_STREAM_PREMATURE_CLOSE" });
}

/**
 * A request's body as connect reads it: the chunks Node has buffered, then each 'readable',
 * until 'end' — what the stream's own async iterator yields, without its generator and its
 * end-of-stream watcher per call. Stopping early (a body over the size limit) destroys an
 * HTTP/1.1 request as that iterator does (not its connection); an HTTP/2 stream is left open
 * for the server to drain (server.ts), so the client reads the answer already sent instead of
 * a reset.
 */
function requestBody(req: NodeRequest, destroyOnReturn: boolean): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      let done = false;
      const end = (): IteratorResult<Uint8Array> => {
        done = true;
        return { done: true, value: undefined };
      };
      const next = (): Promise<IteratorResult<Uint8Array>> => {
        if (done) return Promise.resolve({ done: true, value: undefined });
        const chunk = req.read() as Buffer | null;
        if (chunk !== null) return Promise.resolve({ done: false, value: chunk });
        if (req.readableEnded) return Promise.resolve(end());
        if (req.errored) {
          done = true;
          return Promise.reject(req.errored);
        }
        if (req.destroyed) {
          done = true;
          return Promise.reject(prematureClose());
        }
        return new Promise((resolve, reject) =>
          onFirst(req, BODY_EVENTS, (event, arg) => {
            if (event === "readable") next().then(resolve, reject);
            else if (event === "end" || (event === "close" && req.readableEnded)) resolve(end());
            else {
              done = true;
              reject(event === "error" ? arg : (req.errored ?? prematureClose()));
            }
          }),
        );
      };
      return {
        next,
        return: (value?: unknown) => {
          if (!done) {
            done = true;
            // As Node's own stream iterator ends a server request (destroy.js `destroyer`): the
            // request is destroyed without its socket, so the answer still goes out on the
            // connection and the rest of the body is read and dropped.
            if (destroyOnReturn && !req.destroyed) {
              (req as { socket: unknown }).socket = null;
              req.destroy();
            }
          }
          return Promise.resolve({ done: true, value: value as undefined });
        },
      };
    },
  };
}

/** The universal request of a Node request: see {@link NodeAdapterOptions} for what differs from connect-node. */
function universalRequest(
  req: NodeRequest,
  res: NodeResponse,
  contextValues: ContextValues | undefined,
  call: CallState,
): UniversalServerRequest {
  const encrypted = "encrypted" in req.socket && (req.socket as { encrypted?: boolean }).encrypted === true;
  const authority = "authority" in req ? req.authority : req.headers.host;
  if (authority === undefined) {
    throw new ConnectError("unable to determine request authority from Node.js server request", Code.Internal);
  }
  const controller = new AbortController();
  const h2 = "stream" in req;
  if (h2) {
    req.once("close", () => {
      if (!call.answered) controller.abort(resetError(req.stream.rstCode) ?? REQUEST_ENDED);
    });
  } else {
    // HTTP/1.1 has no error codes, but a socket error (ECONNRESET) ends the request early.
    const onError = (e: unknown) => {
      req.off("error", onError);
      res.off("close", onClose);
      controller.abort(errorFromNodeReason(e));
    };
    const onClose = () => {
      req.off("error", onError);
      res.off("close", onClose);
      // The response's close (the request's comes as soon as its body is read); it can come before "error".
      if (!call.answered) controller.abort(req.errored ? errorFromNodeReason(req.errored) : REQUEST_ENDED);
    };
    req.once("error", onError);
    res.once("close", onClose);
  }
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: `${encrypted ? "https" : "http"}://${authority}${req.url ?? ""}`,
    header: webHeadersOf(req.headers),
    body: requestBody(req, !h2),
    signal: controller.signal,
    contextValues,
  } as UniversalServerRequest;
}

/** Whether an RPC answers with one message (unary, client streaming). */
function answersOnce(handler: UniversalHandler): boolean {
  const kind = handler.method.methodKind;
  return kind === "unary" || kind === "client_streaming";
}

/** A handler whose answers go through `rewrite`. */
function withRewrite(handler: UniversalHandler, rewrite: NonNullable<NodeAdapterOptions["rewriteAnswer"]>): UniversalHandler {
  // A promise continuation, not an async wrapper: one frame less on every call.
  const wrapped = (req: UniversalServerRequest): Promise<UniversalServerResponse> => {
    try {
      return handler(req).then(rewrite);
    } catch (err) {
      return Promise.reject(err);
    }
  };
  return Object.assign(wrapped, handler);
}

/** A fast path's answer through `rewrite` (a fallback's answer comes from connect's own handler, not the wrapped one, so it is rewritten once). */
function rewritten(
  answer: Promise<UniversalServerResponse>,
  rewrite: NodeAdapterOptions["rewriteAnswer"],
): Promise<UniversalServerResponse> {
  return rewrite === undefined ? answer : answer.then(rewrite);
}

/**
 * The fast path of a unary call by its content type: gRPC's over HTTP/2 (never gRPC-Web, never
 * over HTTP/1.1), Connect's for the rest (it hands what is not a Connect unary POST to connect's
 * handler before reading anything).
 */
function fastPath(paths: UnaryPaths | undefined, req: NodeRequest): UnaryPaths["connect"] | undefined {
  if (paths === undefined) return undefined;
  const type = req.headers["content-type"];
  if (type === undefined) return undefined;
  if (type.startsWith("application/grpc")) return "stream" in req ? paths.grpc : undefined;
  return paths.connect;
}

/** A Node request listener serving a connect router, and the router's handlers by request path. */
export interface NodeAdapter {
  (req: NodeRequest, res: NodeResponse): void;
  /** The same handlers the listener routes to (the in-process client calls them directly). */
  readonly handlers: ReadonlyMap<string, UniversalHandler>;
}

/** A Node request listener (HTTP/1.1 and HTTP/2) serving a connect router; see {@link NodeAdapterOptions}. */
export function createNodeAdapter(options: NodeAdapterOptions): NodeAdapter {
  const routerOptions: ConnectRouterOptions = {
    ...options,
    jsonOptions: { ...options.jsonOptions, textEncoder: JSON_UTF8 } as ConnectRouterOptions["jsonOptions"],
    acceptCompression: options.acceptCompression ?? [compressionGzip, compressionBrotli],
  };
  const router = createConnectRouter(routerOptions);
  const unary = new Map<string, UnaryPaths>();
  options.routes(options.unaryFastPath === false ? router : recordUnaryPaths(router, routerOptions, unary));
  const rewrite = options.rewriteAnswer;
  /** connect's handlers by request path (what a fast path falls back to), and the same with the rewrite. */
  const connectHandlers = new Map<string, UniversalHandler>();
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) {
    connectHandlers.set(handler.requestPath, handler);
    paths.set(handler.requestPath, rewrite === undefined ? handler : withRewrite(handler, rewrite));
  }
  const logger = options.logger;
  const beforeTrailers = options.beforeTrailers;
  const listener = (req: NodeRequest, res: NodeResponse): void => {
    const url = req.url ?? "";
    const q = url.indexOf("?");
    const path = q < 0 ? url : url.slice(0, q);
    const handler = paths.get(path);
    if (handler === undefined) {
      plain(res).writeHead(404);
      plain(res).end();
      return;
    }
    const call: CallState = { answered: false };
    const uReq = universalRequest(req, res, options.contextValues?.(req), call);
    const fast = fastPath(unary.get(path), req);
    (fast === undefined ? handler(uReq) : rewritten(fast(uReq, connectHandlers.get(path)!), rewrite))
      .then((uRes) => writeResponse(uRes, res, beforeTrailers, answersOnce(handler), call))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        logger.error({ err: reason, service: handler.service.typeName, method: handler.method.name }, "writing an RPC's response failed");
      });
  };
  return Object.assign(listener, { handlers: paths as ReadonlyMap<string, UniversalHandler> });
}
