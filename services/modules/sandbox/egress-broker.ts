import { EgressRefused } from "./quickjs-sandbox.js";

/**
 * The egress broker: the one way a module reaches the network. It admits only http(s) URLs
 * whose host is one of the manifest's egress hosts ("host" = that host on the scheme's default
 * port, "host:port" = exactly that), never follows redirects (a redirect could leave the
 * declared hosts; the module sees the 3xx), caps the number of requests and the response
 * size, and replaces `{{credential:NAME}}` placeholders in the URL and header values with
 * the tenant's credential at the last moment, so module code never holds the plaintext.
 */
export interface EgressPolicy {
  /** The manifest's egress hosts. */
  hosts: readonly string[];
  /** Credential values by name (only the manifest's credentials). */
  credentials: ReadonlyMap<string, string>;
  /** Most requests per call. */
  maxRequests: number;
  /** Largest response body read, in bytes. */
  maxResponseBytes: number;
}

/** A request as the guest or an HTTP tool describes it. */
export interface EgressRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

const PLACEHOLDER = /\{\{credential:([A-Za-z0-9_]*)\}\}/g;
const METHODS = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);

/** Whether `url`'s host is one of `hosts` (see {@link EgressPolicy.hosts}). */
export function hostAllowed(url: URL, hosts: readonly string[]): boolean {
  const host = url.host.toLowerCase();
  return hosts.some((h) => h.toLowerCase() === host);
}

/** The broker of one call: `fetch(url, init, signal)` → the response as JSON text `{status, headers, body}`. */
export function createEgressBroker(policy: EgressPolicy): (url: string, init: unknown, signal: AbortSignal) => Promise<string> {
  let requests = 0;
  const fill = (text: string): string =>
    text.replace(PLACEHOLDER, (_m, name: string) => {
      const value = policy.credentials.get(name);
      if (value === undefined) throw new EgressRefused(`credential ${name} is not declared in the module's manifest`);
      return value;
    });
  return async (rawUrl, rawInit, signal) => {
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      throw new EgressRefused(`not a URL: ${rawUrl.slice(0, 200)}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new EgressRefused(`only http and https are allowed, not ${url.protocol}`);
    if (url.username || url.password) throw new EgressRefused("URLs with user info are refused");
    if (!hostAllowed(url, policy.hosts)) {
      throw new EgressRefused(`host ${url.host} is not among the module's egress hosts (${policy.hosts.join(", ") || "none"})`);
    }
    requests += 1;
    if (requests > policy.maxRequests) throw new EgressRefused(`the module made more than ${policy.maxRequests} requests in one call`);
    const init = (typeof rawInit === "object" && rawInit !== null ? rawInit : {}) as EgressRequest;
    const method = String(init.method ?? "GET").toUpperCase();
    if (!METHODS.has(method)) throw new EgressRefused(`method ${method} is not allowed`);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(typeof init.headers === "object" && init.headers !== null ? init.headers : {})) {
      headers[String(k)] = fill(String(v));
    }
    const target = fill(url.toString());
    const response = await fetch(target, {
      method,
      headers,
      redirect: "manual",
      signal,
      ...(init.body !== undefined && method !== "GET" && method !== "HEAD" ? { body: String(init.body) } : {}),
    });
    const body = await readCapped(response, policy.maxResponseBytes);
    return JSON.stringify({ status: response.status, headers: Object.fromEntries(response.headers), body });
  };
}

async function readCapped(response: Response, max: number): Promise<string> {
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel();
      throw new EgressRefused(`the response is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Replaces every occurrence of a secret in `text` (results, errors) with `[REDACTED]`. */
export function redactSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[REDACTED]");
  return out;
}
