import { describe, expect, it } from "vitest";
import { createMemoryBucketStore } from "./bucket-store.js";
import { DEFAULT_RATE_LIMITS, formatRateLimits, parseRateLimits } from "./rate-limits.js";
import { routeClassOf } from "./route-class.js";
import { takeAll, tokensAt } from "./token-bucket.js";

const limit = { ratePerSecond: 2, burst: 4 };

describe("token buckets", () => {
  it("start full, refill at their rate and never above their burst", () => {
    expect(tokensAt(undefined, limit, 0)).toBe(4);
    expect(tokensAt({ tokens: 0, atMs: 0 }, limit, 500)).toBe(1);
    expect(tokensAt({ tokens: 3, atMs: 0 }, limit, 10_000)).toBe(4);
  });

  it("take from every bucket or from none, and say how long the refusing bucket needs", () => {
    const states = [
      { tokens: 3, atMs: 0 },
      { tokens: 0.5, atMs: 0 },
    ];
    const refused = takeAll(states, [limit, limit], 0);
    expect(refused.result).toEqual({ allowed: false, refusedBy: 1, retryAfterMs: 250 });
    expect(refused.next.map((s) => s.tokens)).toEqual([3, 0.5]); // nothing taken
    const allowed = takeAll(states, [limit, limit], 250);
    expect(allowed.result).toEqual({ allowed: true });
    expect(allowed.next.map((s) => s.tokens)).toEqual([2.5, 0]);
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
