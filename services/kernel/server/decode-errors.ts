import { Code } from "@connectrpc/connect";
import type { UniversalServerResponse } from "@connectrpc/connect/protocol";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import { domainError } from "../errors.js";
import { decodeError, PARSE_BINARY } from "../interceptors/error-normalizing.js";
import { ReadyAnswer } from "./fast-path.js";

/**
 * Gives the errors Connect raises before any interceptor runs an ErrorInfo and the right
 * code, like every other error of the API, and writes grpc-message as the gRPC spec says.
 *
 * - A unary Connect JSON request whose body does not decode (not JSON, a field the message
 *   does not have, a value of the wrong type) is answered by connect-es itself with
 *   `invalid_argument` and no details: it gets ErrorInfo reason INVALID_ARGUMENT.
 * - A binary body that does not decode (gRPC, gRPC-Web, Connect `application/proto`) is
 *   answered by connect-es with INTERNAL "parse binary: …" — but it is the client's mistake:
 *   it becomes INVALID_ARGUMENT with ErrorInfo reason INVALID_ARGUMENT (cause
 *   `request_decoding`) and the same message.
 * - connect-es percent-encodes grpc-message with `encodeURIComponent`, so `:` travels as
 *   `%3A`; the gRPC spec encodes only bytes outside 0x20–0x7E and `%`, and clients that decode
 *   with `decodeURI` (grpc-js) show `%3A` to the user. Every grpc-message (gRPC trailers and
 *   trailers-only headers, gRPC-Web trailer frames) is re-encoded to the spec.
 *
 * The server's Node bridge applies it to every answer, of connect's handlers and of its unary
 * fast paths (node-adapter.ts `rewriteAnswer`). Answers that need none pass unchanged, without
 * a promise of their own.
 */
export function rewriteDecodeErrors(res: UniversalServerResponse): UniversalServerResponse | Promise<UniversalServerResponse> {
  const contentType = res.header?.get("content-type") ?? "";
  if (contentType.startsWith("application/grpc-web")) return rewriteGrpcWeb(res);
  if (contentType.startsWith("application/grpc")) return rewriteGrpc(res);
  return rewriteConnectUnary(res);
}

/** grpc-message percent-encoding as the gRPC spec defines it (HTTP2 transport mapping). */
export function encodeGrpcMessage(message: string): string {
  let out = "";
  for (const byte of Buffer.from(message, "utf8")) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Longest grpc-message sent (characters): trailers are headers, and peers limit their size. */
const MAX_GRPC_MESSAGE = 1024;

/**
 * Fixes the status in gRPC trailers (or trailers-only headers) in place: "parse binary" →
 * INVALID_ARGUMENT; a protocol error connect-es raised without details (an incomplete
 * envelope, a message over the size limit) gets its ErrorInfo; grpc-message encoded to the spec.
 * The server's Node bridge calls it on a gRPC response's trailers right before writing them
 * (node-adapter.ts `beforeTrailers`).
 */
export function fixGrpcStatus(h: Headers): void {
  const status = h.get("grpc-status");
  if (status === null) return;
  const raw = h.get("grpc-message");
  const message = raw === null ? "" : safeDecode(raw);
  if (status === String(Code.Internal) && message.startsWith(PARSE_BINARY)) {
    h.delete("grpc-status-details-bin");
    setTrailerStatus(h, decodeError(message));
  } else if (h.get("grpc-status-details-bin") === null) {
    if (status === String(Code.InvalidArgument)) setTrailerStatus(h, decodeError(message));
    if (status === String(Code.ResourceExhausted))
      setTrailerStatus(h, domainError("REQUEST_TOO_LARGE", message, { cause: "request_size" }));
  }
  const again = h.get("grpc-message");
  if (again !== null) {
    const text = safeDecode(again);
    h.set("grpc-message", encodeGrpcMessage(text.length > MAX_GRPC_MESSAGE ? `${text.slice(0, MAX_GRPC_MESSAGE)}…` : text));
  }
}

function rewriteGrpc(res: UniversalServerResponse): UniversalServerResponse {
  if (res.header) fixGrpcStatus(res.header);
  // The trailer is filled in while the body is produced: the server's Node bridge fixes it
  // with {@link fixGrpcStatus} right before writing it (no wrapper around every gRPC body).
  return res;
}

function rewriteGrpcWeb(res: UniversalServerResponse): UniversalServerResponse {
  if (res.header) fixGrpcStatus(res.header);
  const body = res.body;
  if (!body) return res;
  return {
    ...res,
    body: (async function* () {
      for await (const chunk of body) {
        // connect-es yields one whole envelope per chunk; the trailer is the flagged one.
        if (chunk.byteLength >= 5 && (chunk[0]! & trailerFlag) === trailerFlag) {
          const length = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).readUInt32BE(1);
          if (length === chunk.byteLength - 5) {
            const headers = trailerParse(chunk.subarray(5));
            fixGrpcStatus(headers);
            const data = trailerSerialize(headers);
            const frame = new Uint8Array(5 + data.byteLength);
            frame[0] = chunk[0]!;
            new DataView(frame.buffer).setUint32(1, data.byteLength);
            frame.set(data, 5);
            yield frame;
            continue;
          }
        }
        yield chunk;
      }
    })(),
  };
}

function rewriteConnectUnary(res: UniversalServerResponse): UniversalServerResponse | Promise<UniversalServerResponse> {
  // Not an async function: every answer that is not an error passes without a frame of its own.
  const header = res.header;
  if ((res.status !== 400 && res.status !== 500) || !res.body || !header) return res;
  if (!header.get("content-type")?.startsWith("application/json") || header.get("content-encoding")) return res;
  return rewriteConnectError(res, header, res.body);
}

async function rewriteConnectError(
  res: UniversalServerResponse,
  header: Headers,
  resBody: AsyncIterable<Uint8Array>,
): Promise<UniversalServerResponse> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of resBody) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const again = (body: Uint8Array, status = res.status): UniversalServerResponse => ({
    ...res,
    status,
    body: new ReadyAnswer([body]),
  });
  let parsed: { code?: unknown; message?: unknown; details?: unknown };
  try {
    parsed = JSON.parse(bytes.toString("utf8")) as typeof parsed;
  } catch {
    return again(bytes);
  }
  const message = typeof parsed.message === "string" ? parsed.message : "the request does not decode";
  const undecodable = parsed.code === "internal" && message.startsWith(PARSE_BINARY);
  if (!undecodable && (parsed.code !== "invalid_argument" || (Array.isArray(parsed.details) && parsed.details.length > 0)))
    return again(bytes);
  const body = errorToJsonBytes(decodeError(message), {});
  header.set("content-length", String(body.byteLength));
  return again(body, 400);
}
