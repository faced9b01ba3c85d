import { lookup as lookupCallback } from "node:dns";
import { lookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";
import { BlockList, isIP } from "node:net";
import { Agent, fetch as undiciFetch } from "undici";
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
  /**
   * Declared hosts ("host" or "host:port" as in `hosts`, or "*") allowed to resolve to a
   * non-public address (NEXUS_MODULES_EGRESS_ALLOW_PRIVATE); every other host is refused when
   * any of its addresses is loopback, private, link-local, CGNAT, multicast or unspecified.
   */
  allowPrivate?: readonly string[];
}

/** Addresses a module never reaches unless the installation allows the host (SSRF). */
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 3],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, "ipv4");
}
for (const [net, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
  ["64:ff9b::", 96],
] as const) {
  NON_PUBLIC.addSubnet(net, prefix, "ipv6");
}

/** Whether an IP address is loopback, private, link-local or otherwise not on the public internet. */
export function isNonPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return NON_PUBLIC.check(mapped, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return NON_PUBLIC.check(address, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Refuses a URL whose host is, or resolves to, a non-public address unless the installation
 * allows that host. Every address the name resolves to is checked (a name with one public and
 * one private address is refused).
 */
/** Whether the installation lets `url`'s host reach non-public addresses (NEXUS_MODULES_EGRESS_ALLOW_PRIVATE). */
export function allowsPrivate(url: URL, allow: readonly string[]): boolean {
  return allow.includes("*") || allow.includes(url.host.toLowerCase()) || allow.includes(url.hostname.toLowerCase());
}

/**
 * The resolver the broker's connections use: the addresses a connection is made to are the ones
 * checked, so a name that resolved to a public address at admission and to a private one when
 * connecting (DNS rebinding) is refused too. `allowPrivate`: the installation allows this host.
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    lookupCallback(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) {
        callback(err, "", 4);
        return;
      }
      const list = addresses as unknown as { address: string; family: number }[];
      const bad = allowPrivate ? undefined : list.find((a) => isNonPublicAddress(a.address));
      if (bad !== undefined) {
        callback(new EgressRefused(`host ${hostname} resolved to ${bad.address} when connecting, a non-public address: refused`), "", 4);
        return;
      }
      if (options.all) (callback as unknown as (e: null, a: typeof list) => void)(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

async function refuseNonPublic(url: URL, allow: readonly string[]): Promise<void> {
  if (allowsPrivate(url, allow)) return;
  const name = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: string[];
  if (isIP(name)) addresses = [name];
  else {
    try {
      addresses = (await lookup(name, { all: true, verbatim: true })).map((a) => a.address);
    } catch {
      throw new EgressRefused(`host ${url.hostname} does not resolve`);
    }
  }
  const bad = addresses.find(isNonPublicAddress);
  if (bad !== undefined) {
    throw new EgressRefused(
      `host ${url.hostname} resolves to ${bad}, a loopback, private or link-local address: modules reach public hosts only (an installation allows such hosts with NEXUS_MODULES_EGRESS_ALLOW_PRIVATE)`,
    );
  }
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

/**
 * The broker's checks of a URL (also for gRPC tools): http or https, no user info, a declared
 * egress host, and not a non-public address unless the installation allows it. Throws
 * {@link EgressRefused}.
 */
export async function admitUrl(rawUrl: string, policy: Pick<EgressPolicy, "hosts" | "allowPrivate">): Promise<URL> {
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
  await refuseNonPublic(url, policy.allowPrivate ?? []);
  return url;
}

/** Replaces `{{credential:NAME}}` placeholders with the credentials (an undeclared name is refused). */
export function fillCredentials(text: string, credentials: ReadonlyMap<string, string>): string {
  return text.replace(PLACEHOLDER, (_m, name: string) => {
    const value = credentials.get(name);
    if (value === undefined) throw new EgressRefused(`credential ${name} is not declared in the module's manifest`);
    return value;
  });
}

/** The broker of one call: `fetch(url, init, signal)` → the response as JSON text `{status, headers, body}`. */
export function createEgressBroker(policy: EgressPolicy): (url: string, init: unknown, signal: AbortSignal) => Promise<string> {
  let requests = 0;
  const fill = (text: string): string => fillCredentials(text, policy.credentials);
  return async (rawUrl, rawInit, signal) => {
    const url = await admitUrl(rawUrl, policy);
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
    // The connection resolves the name again: the same check runs on the addresses it connects to.
    const dispatcher = new Agent({ connect: { lookup: guardedLookup(allowsPrivate(url, policy.allowPrivate ?? [])) } });
    try {
      const response = await undiciFetch(target, {
        method,
        headers,
        redirect: "manual",
        signal,
        dispatcher,
        ...(init.body !== undefined && method !== "GET" && method !== "HEAD" ? { body: String(init.body) } : {}),
      });
      const body = await readCapped(response as unknown as Response, policy.maxResponseBytes);
      return JSON.stringify({ status: response.status, headers: Object.fromEntries(response.headers), body });
    } catch (err) {
      const refused = err instanceof EgressRefused ? err : (err as { cause?: unknown })?.cause;
      if (refused instanceof EgressRefused) throw refused;
      throw err;
    } finally {
      void dispatcher.close().catch(() => undefined);
    }
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
