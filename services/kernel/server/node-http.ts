import type { IncomingMessage, ServerResponse } from "node:http";
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
