import type http2 from "node:http2";

/**
 * RPCs sent as raw bytes, below any client library, so tests can send what no well-behaved
 * client would (invalid UTF-8, garbage frames, wrong JSON types) and read exactly what came
 * back: the gRPC status and message, the details header, or an RST_STREAM.
 */

/** What a raw call ended with. */
export interface RawOutcome {
  /** The gRPC status code (gRPC) or the Connect error code name mapped to a number (Connect). */
  code: number | undefined;
  /** grpc-message (percent-decoded) or the Connect error message. */
  message: string;
  /** Whether an error detail (google.rpc.ErrorInfo among them) came back. */
  hasDetails: boolean;
  /** HTTP status. */
  httpStatus: number | undefined;
  /** RST_STREAM code when the stream was reset instead of answered. */
  rstCode?: number;
  /** Raw response body (Connect) or undefined. */
  body?: string;
}

/** gRPC status code names by number (Code of @connectrpc/connect uses the same numbers). */
export const GRPC_CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

/** A length-prefixed gRPC message frame (uncompressed). */
export function grpcFrame(payload: Uint8Array): Buffer {
  const frame = Buffer.alloc(5 + payload.byteLength);
  frame.writeUInt32BE(payload.byteLength, 1);
  frame.set(payload, 5);
  return frame;
}

/**
 * One gRPC call over an HTTP/2 session: POSTs `body` (already framed, or raw bytes to frame
 * with `frame: true`) and resolves with the status from the trailers (or trailers-only
 * headers), or the RST_STREAM code.
 */
export function grpcRaw(
  session: http2.ClientHttp2Session,
  path: string,
  payload: Uint8Array,
  headers: Record<string, string> = {},
  options: { frame?: boolean; contentType?: string } = {},
): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const req = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": options.contentType ?? "application/grpc",
      te: "trailers",
      "grpc-timeout": "10S",
      ...headers,
    });
    let status: string | undefined;
    let message = "";
    let details = false;
    let httpStatus: number | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) status = String(h["grpc-status"]);
      if (h["grpc-message"] !== undefined) message = decodeURIComponent(String(h["grpc-message"]));
      if (h["grpc-status-details-bin"] !== undefined) details = true;
    };
    req.on("response", (h) => {
      httpStatus = Number(h[":status"]);
      take(h);
    });
    req.on("trailers", take);
    req.on("data", () => {});
    req.on("error", () => {});
    req.on("close", () => {
      resolve({
        code: status === undefined ? undefined : Number(status),
        message,
        hasDetails: details,
        httpStatus,
        ...(req.rstCode && status === undefined ? { rstCode: req.rstCode } : {}),
      });
    });
    req.end(options.frame === false ? Buffer.from(payload) : grpcFrame(payload));
  });
}

const CONNECT_CODES: Record<string, number> = Object.fromEntries(GRPC_CODE_NAMES.map((n, i) => [n.toLowerCase(), i]));

/**
 * One Connect unary call over HTTP/1.1 with a raw body (`application/json` or
 * `application/proto`). Resolves with the error code of the JSON error body (0 on success).
 */
export async function connectRaw(
  baseUrl: string,
  path: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
  contentType = "application/json",
): Promise<RawOutcome> {
  const res = await fetch(`${baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": contentType, "connect-protocol-version": "1", "connect-timeout-ms": "10000", ...headers },
    body: typeof body === "string" ? body : Buffer.from(body),
  });
  const text = await res.text();
  if (res.status === 200) return { code: 0, message: "", hasDetails: false, httpStatus: 200, body: text };
  try {
    const parsed = JSON.parse(text) as { code?: string; message?: string; details?: unknown[] };
    return {
      code: parsed.code === undefined ? undefined : CONNECT_CODES[parsed.code],
      message: parsed.message ?? "",
      hasDetails: Array.isArray(parsed.details) && parsed.details.length > 0,
      httpStatus: res.status,
      body: text,
    };
  } catch {
    return { code: undefined, message: text.slice(0, 200), hasDetails: false, httpStatus: res.status, body: text };
  }
}
