import { describe, expect, it } from "vitest";
import { createMemoryBucketStore } from "./bucket-store.js";
import { DEFAULT_RATE_LIMITS, formatRateLimits, parseRateLimits } from "./rate-limits.js";
import { routeClassOf } from "./route-class.js";
import { tokensAt } from "./token-bucket.js";

const limit = { ratePerSecond: 2, burst: 4 };

describe("token buckets", () => {
  it("start full, refill at their rate and never above their burst", () => {
    expect(tokensAt(undefined, limit, 0)).toBe(4);
    expect(tokensAt({ tokens: 0, atMs: 0 }, limit, 500)).toBe(1);
    expect(tokensAt({ tokens: 3, atMs: 0 }, limit, 10_000)).toBe(4);
  });

  it("take from every bucket or from none, and say how long the refusing bucket needs", () => {
    let now = 0;
    const store = createMemoryBucketStore({ now: () => now });
    const key = { name: "k", limit };
    const tenant = { name: "t", limit };
    // The tenant's bucket down to 0.5 tokens (4 taken at t=0, 0.5 refilled by t=250, 1 taken at t=250 … ).
    for (let i = 0; i < 4; i++) expect(store.takeNow!([tenant]).allowed).toBe(true);
    now = 250;
    expect(store.takeNow!([tenant]).allowed).toBe(false);
    now = 500;
    expect(store.takeNow!([tenant]).allowed).toBe(true); // tenant: 1 − 1 = 0 tokens at t=500
    now = 750; // tenant: 0.5 tokens; key: full (4)
    expect(store.takeNow!([key, tenant])).toEqual({ allowed: false, refusedBy: 1, retryAfterMs: 250 });
    // Refused: nothing was taken from the key's bucket either.
    for (let i = 0; i < 4; i++) expect(store.takeNow!([key]).allowed).toBe(true);
    expect(store.takeNow!([key]).allowed).toBe(false);
    now = 1_000; // tenant: 1 token; key: 0.5
    expect(store.takeNow!([tenant, key])).toEqual({ allowed: false, refusedBy: 1, retryAfterMs: 250 });
    now = 1_250; // tenant 1.5, key 1: both pass, and both are taken from
    expect(store.takeNow!([key, tenant]).allowed).toBe(true);
    expect(store.takeNow!([key])).toEqual({ allowed: false, refusedBy: 0, retryAfterMs: 500 });
    expect(store.takeNow!([tenant])).toEqual({ allowed: false, refusedBy: 0, retryAfterMs: 250 });
  });

  it("in memory, past the maximum: refilled buckets go first, then the oldest, not the busy ones", () => {
    let now = 0;
    const store = createMemoryBucketStore({ now: () => now, maxBuckets: 10 });
    const busy = { name: "busy", limit };
    for (let i = 0; i < 4; i++) expect(store.takeNow!([busy]).allowed).toBe(true);
    for (let i = 0; i < 9; i++) store.takeNow!([{ name: `idle-${i}`, limit }]);
    now = 500; // the idle buckets are full again (one token in 0.5 s); busy holds 1
    store.takeNow!([{ name: "new", limit }]); // 11 buckets: the full ones are dropped
    // busy was kept with what it held: one call passes, the next waits.
    expect(store.takeNow!([busy]).allowed).toBe(true);
    expect(store.takeNow!([busy])).toEqual({ allowed: false, refusedBy: 0, retryAfterMs: 500 });

    // None full: the oldest go, down to nine tenths of the maximum (here 2 of 3).
    const small = createMemoryBucketStore({ now: () => 0, maxBuckets: 3 });
    for (const name of ["a", "b", "c", "d"]) for (let i = 0; i < 4; i++) small.takeNow!([{ name, limit }]);
    expect(small.takeNow!([{ name: "d", limit }]).allowed).toBe(false); // kept
    expect(small.takeNow!([{ name: "a", limit }]).allowed).toBe(true); // dropped: a fresh burst
  });

  it("in memory: a burst passes, the next call waits the refill time", async () => {
    let now = 1_000;
    const store = createMemoryBucketStore({ now: () => now });
    const b = [{ name: "k", limit }];
    for (let i = 0; i < 4; i++) expect((await store.take(b)).allowed).toBe(true);
    expect(await store.take(b)).toEqual({ allowed: false, refusedBy: 0, retryAfterMs: 500 });
    now += 500;
    expect((await store.take(b)).allowed).toBe(true);
  });
});

describe("rate limit settings", () => {
  it("default to run < mutation < read allowances, per key below per tenant", () => {
    expect(DEFAULT_RATE_LIMITS.run.key).toEqual({ ratePerSecond: 1, burst: 5 });
    expect(DEFAULT_RATE_LIMITS.read.tenant).toEqual({ ratePerSecond: 15, burst: 60 });
    expect(parseRateLimits(formatRateLimits(DEFAULT_RATE_LIMITS))).toEqual(DEFAULT_RATE_LIMITS);
  });

  it("override only the classes named, and name a bad entry", () => {
    const l = parseRateLimits("read=10/40:30/120");
    expect(l.read).toEqual({ key: { ratePerSecond: 10, burst: 40 }, tenant: { ratePerSecond: 30, burst: 120 } });
    expect(l.run).toEqual(DEFAULT_RATE_LIMITS.run);
    expect(() => parseRateLimits("reads=1/2:3/4")).toThrow(/reads=1\/2:3\/4/);
    expect(() => parseRateLimits("run=0/2:3/4")).toThrow(/rate > 0/);
    expect(() => parseRateLimits("run=1/2")).toThrow(/tenant/);
  });

  it("class every RPC by what it costs", () => {
    expect(routeClassOf("nexus.agent.v1.AgentService", "Run")).toBe("run");
    expect(routeClassOf("nexus.audit.v1.AuditService", "ListAuditEvents")).toBe("ops");
    expect(routeClassOf("nexus.ingestion.v1.IngestionService", "ReplayDeadLetter")).toBe("ops");
    expect(routeClassOf("nexus.auth.v1.AuthService", "CreateApiKey")).toBe("mutation");
    expect(routeClassOf("nexus.retrieval.v1.RetrievalService", "Search")).toBe("read");
  });
});
