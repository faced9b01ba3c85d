import { describe, expect, it } from "vitest";
import type { Principal } from "../context.js";
import { AuthenticationCache, invalidateInProcess } from "./authentication-cache.js";

const principal = (keyId: string, tenantId = "t1"): Principal => ({
  kind: "tenant",
  keyId,
  name: keyId,
  tenantId,
  tenantSlug: tenantId,
  role: "viewer",
  plan: "free",
  entitlements: { features: {}, featureConfig: {}, monthlyRunAllowance: 100, maxActiveApiKeys: undefined },
});

function clock(start = 0) {
  let now = start;
  return { now: () => new Date(now), advance: (ms: number) => void (now += ms) };
}

describe("AuthenticationCache", () => {
  it("keeps an answer for the TTL and never past its valid_until", () => {
    const c = clock();
    const cache = new AuthenticationCache({ ttlMs: 1000, clock: c.now });
    cache.set("nxs_a_x", principal("a"), undefined, cache.epoch());
    cache.set("nxs_b_x", principal("b"), new Date(300), cache.epoch());
    c.advance(299);
    expect(cache.get("nxs_a_x")?.keyId).toBe("a");
    expect(cache.get("nxs_b_x")?.keyId).toBe("b");
    c.advance(1);
    expect(cache.get("nxs_b_x")).toBeUndefined();
    c.advance(700);
    expect(cache.get("nxs_a_x")).toBeUndefined();
    cache.close();
  });

  it("keeps the key's record with its principal and drops both together (WhoAmI answers from it)", () => {
    const cache = new AuthenticationCache();
    const record = { id: "a", name: "ci" };
    cache.set("nxs_a_x", principal("a"), undefined, cache.epoch(), record);
    expect(cache.lookup("nxs_a_x")).toEqual({ principal: principal("a"), credential: record });
    invalidateInProcess({ keyIds: ["a"] });
    expect(cache.lookup("nxs_a_x")).toBeUndefined();
    cache.close();
  });

  it("drops by key and by tenant, in this cache and every other of the process", () => {
    const one = new AuthenticationCache();
    const two = new AuthenticationCache();
    for (const cache of [one, two]) {
      cache.set("nxs_a_x", principal("a", "t1"), undefined, cache.epoch());
      cache.set("nxs_b_x", principal("b", "t1"), undefined, cache.epoch());
      cache.set("nxs_c_x", principal("c", "t2"), undefined, cache.epoch());
    }
    one.invalidate({ keyIds: ["a"] });
    expect(one.get("nxs_a_x")).toBeUndefined();
    expect(one.get("nxs_b_x")).toBeDefined();
    invalidateInProcess({ tenantIds: ["t1"] });
    for (const cache of [one, two]) {
      expect(cache.get("nxs_b_x")).toBeUndefined();
      expect(cache.get("nxs_c_x")?.keyId).toBe("c");
      cache.close();
    }
  });

  it("does not store an answer that raced an invalidation", () => {
    const cache = new AuthenticationCache();
    const started = cache.epoch();
    cache.invalidate({ keyIds: ["a"] });
    cache.set("nxs_a_x", principal("a"), undefined, started);
    expect(cache.get("nxs_a_x")).toBeUndefined();
    cache.close();
  });

  it("evicts the least recently used beyond its bound", () => {
    const cache = new AuthenticationCache({ maxEntries: 2 });
    cache.set("nxs_a_x", principal("a"), undefined, cache.epoch());
    cache.set("nxs_b_x", principal("b"), undefined, cache.epoch());
    cache.get("nxs_a_x");
    cache.set("nxs_c_x", principal("c"), undefined, cache.epoch());
    expect(cache.get("nxs_b_x")).toBeUndefined();
    expect(cache.get("nxs_a_x")).toBeDefined();
    expect(cache.size).toBe(2);
    cache.close();
  });

  it("is bypassed and emptied while disabled (feed down), and never holds the key itself", () => {
    const cache = new AuthenticationCache();
    cache.set("nxs_a_secret", principal("a"), undefined, cache.epoch());
    expect(JSON.stringify([...(cache as unknown as { entries: Map<string, unknown> }).entries.keys()])).not.toContain("secret");
    cache.setEnabled(false);
    expect(cache.get("nxs_a_secret")).toBeUndefined();
    cache.set("nxs_a_secret", principal("a"), undefined, cache.epoch());
    cache.setEnabled(true);
    expect(cache.get("nxs_a_secret")).toBeUndefined();
    cache.close();
  });
});
