import { randomBytes } from "node:crypto";
import { createContextValues, type HandlerContext } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthAttemptLimiter } from "./auth-attempt-limiter.js";
import { addressBucketOf, clientAddressOfCall, createClientAddressResolver, socketAddressKey } from "./client-address.js";

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe("AuthAttemptLimiter", () => {
  it("lets a burst of refused attempts through, then throttles the address with a retry-after, and refills", () => {
    const c = clock();
    const starts: string[] = [];
    const ends: number[] = [];
    const limiter = new AuthAttemptLimiter({
      burst: 3,
      ratePerSecond: 2,
      now: c.now,
      onThrottleStart: (p) => starts.push(`${p.scope}:${p.subject}`),
      onThrottleEnd: (p) => ends.push(p.throttled),
    });
    for (let i = 0; i < 3; i++) {
      expect(limiter.admit("10.0.0.1", undefined, "nxs_x_y")).toBeUndefined();
      limiter.refused("10.0.0.1", undefined);
    }
    const first = limiter.admit("10.0.0.1", undefined, "nxs_x_y");
    expect(first).toEqual({ scope: "client_address", retryAfterMs: 500, startsPeriod: true });
    expect(limiter.admit("10.0.0.1", undefined, "nxs_x_y")?.startsPeriod).toBe(false);
    // Another address is not affected.
    expect(limiter.admit("10.0.0.2", undefined, "nxs_x_y")).toBeUndefined();
    expect(starts).toEqual(["client_address:10.0.0.1"]);
    c.advance(500);
    expect(limiter.admit("10.0.0.1", undefined, "nxs_x_y")).toBeUndefined();
    // Still within the period (not full again): a refusal empties it, no new period starts.
    limiter.refused("10.0.0.1", undefined);
    expect(limiter.admit("10.0.0.1", undefined, "nxs_x_y")?.startsPeriod).toBe(false);
    c.advance(1500);
    expect(limiter.admit("10.0.0.1", undefined, "nxs_x_y")).toBeUndefined();
    expect(ends).toEqual([3]);
    expect(limiter.size.clientAddress).toBe(0);
  });

  it("throttles a key id attacked from many addresses, and lets a credential that succeeded before through", () => {
    const c = clock();
    const limiter = new AuthAttemptLimiter({ burst: 2, ratePerSecond: 1, now: c.now });
    const good = "nxs_k1_good";
    limiter.succeeded(good);
    limiter.refused("10.0.0.1", "k1");
    limiter.refused("10.0.0.2", "k1");
    expect(limiter.admit("10.0.0.3", "k1", "nxs_k1_wrong")).toMatchObject({ scope: "key_id", retryAfterMs: 1000 });
    expect(limiter.admit("10.0.0.3", "k1", good)).toBeUndefined();
    // A successful authentication costs nothing.
    expect(limiter.admit("10.0.0.4", "k2", "nxs_k2_x")).toBeUndefined();
  });

  it("is off with a burst or rate of 0", () => {
    for (const options of [{ burst: 0 }, { ratePerSecond: 0 }]) {
      const limiter = new AuthAttemptLimiter(options);
      expect(limiter.enabled).toBe(false);
      for (let i = 0; i < 100; i++) limiter.refused("10.0.0.1", "k");
      expect(limiter.admit("10.0.0.1", "k", "nxs_k_x")).toBeUndefined();
      expect(limiter.size).toEqual({ clientAddress: 0, keyId: 0, goodCredentials: 0 });
    }
  });

  it("keeps at most maxEntries buckets under a spray of 100 000 random key ids and addresses", () => {
    const limiter = new AuthAttemptLimiter({ burst: 20, ratePerSecond: 1, maxEntries: 1000 });
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 100_000; i++) {
      const keyId = randomBytes(12).toString("hex");
      const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      limiter.admit(address, keyId, `nxs_${keyId}_x`);
      limiter.refused(address, keyId);
      limiter.succeeded(`nxs_${keyId}_y`);
    }
    expect(limiter.size).toEqual({ clientAddress: 1000, keyId: 1000, goodCredentials: 1000 });
    // Generous: 3 000 entries are well under a megabyte; unbounded maps would hold ~300 000.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(20 * 1024 * 1024);
  });

  it("counts an IPv6 client by its /64", () => {
    expect(addressBucketOf("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressBucketOf("2001:db8::1")).toBe("2001:db8:0:0::/64");
    expect(addressBucketOf("::1")).toBe("0:0:0:0::/64");
    expect(addressBucketOf("192.0.2.7")).toBe("192.0.2.7");
    const limiter = new AuthAttemptLimiter({ burst: 1, ratePerSecond: 1 });
    limiter.refused("2001:db8:1:2::1", undefined);
    expect(limiter.admit("2001:db8:1:2:ffff::9", undefined, undefined)?.scope).toBe("client_address");
  });
});

describe("createClientAddressResolver", () => {
  const ctx = (peer: string | undefined, forwarded?: string): HandlerContext => {
    const values = createContextValues();
    values.set(socketAddressKey, peer);
    const requestHeader = new Headers(forwarded ? { "x-forwarded-for": forwarded } : {});
    return { values, requestHeader } as unknown as HandlerContext;
  };

  it("ignores X-Forwarded-For unless the peer is a trusted proxy", () => {
    const resolver = createClientAddressResolver();
    const resolve = (c: HandlerContext) => clientAddressOfCall(resolver, c);
    expect(resolve(ctx("::ffff:10.1.2.3", "203.0.113.9"))).toBe("10.1.2.3");
    expect(resolve(ctx(undefined))).toBeUndefined();
  });

  it("takes the last hop that is not a trusted proxy", () => {
    const resolver = createClientAddressResolver(["10.0.0.0/8", "::1"]);
    const resolve = (c: HandlerContext) => clientAddressOfCall(resolver, c);
    expect(resolve(ctx("10.0.0.5", "198.51.100.1, 203.0.113.9, 10.0.0.7"))).toBe("203.0.113.9");
    expect(resolve(ctx("::1", "203.0.113.9"))).toBe("203.0.113.9");
    // Not from a trusted proxy: the header is the client's invention.
    expect(resolve(ctx("192.0.2.1", "203.0.113.9"))).toBe("192.0.2.1");
    // A garbled hop stops the walk at the proxy.
    expect(resolve(ctx("10.0.0.5", "nonsense"))).toBe("10.0.0.5");
    expect(resolve(ctx("10.0.0.5"))).toBe("10.0.0.5");
  });
});
