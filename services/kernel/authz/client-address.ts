import { BlockList, isIP } from "node:net";
import type { HandlerContext } from "@connectrpc/connect";
import { createContextKey } from "@connectrpc/connect";

/** What {@link socketAddressKey} holds: the call's Node request, whose socket knows the peer. */
export interface PeerSource {
  /** Null once the request's body was abandoned (Node detaches a server request from its socket then). */
  readonly socket: { readonly remoteAddress?: string | undefined } | null;
}

/**
 * Connect context value: the call's Node request, set by the kernel server for every call, from
 * which the connection's peer address (`socket.remoteAddress`) is read only when a decision
 * needs it (a refused authentication) — not on every call (on HTTP/2 `req.socket` builds a proxy
 * object). Undefined when the server does not know it (an embedded handler without a socket).
 */
export const socketAddressKey = createContextKey<PeerSource | undefined>(undefined, { description: "nexus connection peer" });

/** The client address of a request from its connection's peer address and its headers. */
export type ClientAddressResolver = (peer: string | undefined, headers: Headers) => string | undefined;

/** The client address of an RPC (the peer address the kernel server put in its context). */
export function clientAddressOfCall(resolve: ClientAddressResolver, ctx: HandlerContext): string | undefined {
  return resolve(ctx.values.get(socketAddressKey)?.socket?.remoteAddress, ctx.requestHeader);
}

/** Longest X-Forwarded-For header looked at (a longer one is ignored, not parsed). */
const MAX_FORWARDED_LENGTH = 2048;

/**
 * Resolves the address of the client behind a call, for decisions that must not be spoofable
 * (the refused-authentication limiter): the connection's peer address; when that peer is one of
 * `trustedProxies` (NEXUS_TRUSTED_PROXIES: addresses or CIDRs), the last X-Forwarded-For hop that
 * is not itself a trusted proxy (each proxy appends the address it saw, so hops to the left of
 * the first untrusted one are the client's to invent). Without trusted proxies X-Forwarded-For
 * is ignored. IPv4-mapped IPv6 addresses read as IPv4.
 */
export function createClientAddressResolver(trustedProxies: readonly string[] = []): ClientAddressResolver {
  const trusted = trustedProxies.length > 0 ? blockListOf(trustedProxies) : undefined;
  return (peer, headers) => {
    if (peer === undefined) return undefined;
    const address = unmapped(peer);
    if (trusted === undefined || !isTrusted(trusted, address)) return address;
    const forwarded = headers.get("x-forwarded-for");
    if (forwarded === null || forwarded.length > MAX_FORWARDED_LENGTH) return address;
    const hops = forwarded.split(",");
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = unmapped(hops[i]!.trim());
      if (isIP(hop) === 0) return address;
      if (!isTrusted(trusted, hop)) return hop;
    }
    return address;
  };
}

function blockListOf(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", bits] = entry.split("/");
    const family = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

function isTrusted(list: BlockList, address: string): boolean {
  const family = isIP(address);
  return family !== 0 && list.check(address, family === 6 ? "ipv6" : "ipv4");
}

/** `::ffff:10.1.2.3` → `10.1.2.3` (a dual-stack socket reports IPv4 peers this way). */
function unmapped(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The bucket an address counts against: an IPv4 address itself, an IPv6 address's /64 (one
 * host usually holds a whole /64, so per-address buckets would let it spray 2^64 of them).
 */
export function addressBucketOf(address: string): string {
  if (isIP(address) !== 6) return address;
  const [head = "", tail] = address.split("::");
  const left = head ? head.split(":") : [];
  const right = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups =
    tail === undefined ? left : [...left, ...new Array<string>(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
