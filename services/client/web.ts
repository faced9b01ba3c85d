import type { Interceptor, Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

/** Options of {@link createWebTransport}. */
export interface WebTransportOptions {
  /** Where Nexus (or an edge agent) listens, e.g. "https://nexus.example.com". */
  baseUrl: string;
  /** API key sent as `Authorization: Bearer …`. */
  apiKey?: string;
  /** JSON instead of binary Protobuf (default false). */
  useJson?: boolean;
  /** Extra interceptors. */
  interceptors?: Interceptor[];
}

/**
 * A Connect transport over `fetch` (connect-web) for browsers and other fetch-only runtimes;
 * pass it to `createSender` or to `createClient`. The server must allow the page's origin (CORS).
 */
export function createWebTransport(options: WebTransportOptions): Transport {
  const attach: Interceptor = (next) => (req) => {
    if (options.apiKey && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${options.apiKey}`);
    return next(req);
  };
  return createConnectTransport({
    baseUrl: options.baseUrl,
    useBinaryFormat: !options.useJson,
    interceptors: [attach, ...(options.interceptors ?? [])],
  });
}
