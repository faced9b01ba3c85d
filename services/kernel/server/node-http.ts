import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

/** A request from either Node HTTP server (HTTP/1.1 or the HTTP/2 compatibility API). */
export type NodeRequest = IncomingMessage | Http2ServerRequest;
/** A response of either Node HTTP server. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/**
 * The part of a response both Node servers share. TypeScript cannot call methods on the
 * union of the two response classes (their overloads differ), so code that writes simple
 * answers (CORS, /metrics, errors) goes through this view.
 */
export interface PlainResponse {
  readonly headersSent: boolean;
  setHeader(name: string, value: string): unknown;
  writeHead(status: number, headers?: Record<string, string>): unknown;
  end(body?: string): unknown;
}

/** The response as a {@link PlainResponse}. */
export function plain(res: NodeResponse): PlainResponse {
  return res as unknown as PlainResponse;
}

/**
 * A Node request's headers as fetch Headers, HTTP/2 pseudo-headers (`:path`…) left out and
 * repeated headers appended (`get` joins them with ", "), as connect-node converts them. The
 * server's Node bridge gives every RPC these; plain HTTP routes (SCIM, console sign-in) use
 * the same.
 */
export function webHeadersOf(nodeHeaders: IncomingHttpHeaders): Headers {
  const header = new Headers();
  for (const k in nodeHeaders) {
    if (k.charCodeAt(0) === 58 /* ":" */) continue;
    const v = nodeHeaders[k];
    if (v === undefined) continue;
    if (typeof v === "string") header.append(k, v);
    else if (typeof v === "number") header.append(k, String(v));
    else for (const e of v) header.append(k, e);
  }
  return header;
}
