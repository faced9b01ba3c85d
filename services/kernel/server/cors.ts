import { cors as connectCors } from "@connectrpc/connect";
import { CORRELATION_ID_HEADER, REQUEST_ID_HEADER } from "../context.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { plain } from "./node-http.js";

/** Options of {@link createCors}. */
export interface CorsOptions {
  /** "*" (any origin, the default) or the exact origins allowed, e.g. ["https://app.example.com"]. */
  origins?: "*" | readonly string[];
  /** Request headers browsers may send beyond Connect's, ours and the tracing ones. */
  allowedHeaders?: readonly string[];
  /** Response headers browser scripts may read beyond Connect's and ours. */
  exposedHeaders?: readonly string[];
  /** How long browsers may cache a preflight answer, seconds; default 7200. */
  maxAgeSeconds?: number;
}

/** Request headers every Nexus browser client may need besides Connect's own. */
const NEXUS_REQUEST_HEADERS = [
  "authorization",
  REQUEST_ID_HEADER,
  CORRELATION_ID_HEADER,
  "traceparent",
  "tracestate",
  "baggage",
  "idempotency-key",
];

/** Response headers browser clients read besides Connect's own (which include grpc-status, grpc-message). */
const NEXUS_EXPOSED_HEADERS = [REQUEST_ID_HEADER, CORRELATION_ID_HEADER, "retry-after"];

/**
 * CORS for browser clients of all three protocols: preflight (OPTIONS) answers and the
 * `Access-Control-*` headers on actual responses, using connect's lists of methods and
 * headers (Connect-Protocol-Version, Grpc-Status, Grpc-Message, …) plus Nexus's own.
 * Returns `handle(req, res)`: true when it answered the request (a preflight).
 */
export function createCors(options: CorsOptions = {}): (req: NodeRequest, res: NodeResponse) => boolean {
  const origins = options.origins ?? "*";
  const allowMethods = [...connectCors.allowedMethods].join(", ");
  const allowHeaders = [...new Set([...connectCors.allowedHeaders, ...NEXUS_REQUEST_HEADERS, ...(options.allowedHeaders ?? [])])].join(
    ", ",
  );
  const exposeHeaders = [...new Set([...connectCors.exposedHeaders, ...NEXUS_EXPOSED_HEADERS, ...(options.exposedHeaders ?? [])])].join(
    ", ",
  );
  const maxAge = String(options.maxAgeSeconds ?? 7200);

  const allowedOrigin = (origin: string | undefined): string | undefined => {
    if (origin === undefined) return undefined;
    if (origins === "*") return "*";
    return origins.includes(origin) ? origin : undefined;
  };

  return (req, nodeRes) => {
    const res = plain(nodeRes);
    const origin = typeof req.headers.origin === "string" ? req.headers.origin : undefined;
    const allowed = allowedOrigin(origin);
    if (origins !== "*") res.setHeader("vary", "Origin");
    const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
    if (preflight) {
      if (allowed === undefined) {
        // Not an origin we serve: answer without any allowance so the browser blocks the call.
        res.writeHead(403);
        res.end();
        return true;
      }
      res.setHeader("access-control-allow-origin", allowed);
      res.setHeader("access-control-allow-methods", allowMethods);
      res.setHeader("access-control-allow-headers", allowHeaders);
      res.setHeader("access-control-max-age", maxAge);
      res.writeHead(204);
      res.end();
      return true;
    }
    if (allowed !== undefined) {
      res.setHeader("access-control-allow-origin", allowed);
      res.setHeader("access-control-expose-headers", exposeHeaders);
    }
    return false;
  };
}
