import { describe, expect, it } from "vitest";
import { accessChangeOf, TenantAccessCache } from "./access-cache.js";

describe("the per-process access cache", () => {
  const counting = () => {
    let reads = 0;
    return { load: async () => ({ n: ++reads }), reads: () => reads };
  };

  it("reads the database every time while no live feed backs it", async () => {
    const cache = new TenantAccessCache<{ n: number }>();
    const db = counting();
    await cache.context("t1", db.load);
    await cache.context("t1", db.load);
    expect(db.reads()).toBe(2);
    const feed = { live: false };
    cache.addFeed(feed);
    await cache.context("t1", db.load);
    expect(db.reads()).toBe(3);
  });

  it("keeps a tenant's answer until an event of that tenant drops it, and tells watchers", async () => {
    const cache = new TenantAccessCache<{ n: number }>();
    const feed = { live: true };
    const remove = cache.addFeed(feed);
    const db = counting();
    const changes: (string | undefined)[] = [];
    cache.onChange((t) => changes.push(t));
    expect(await cache.context("t1", db.load)).toEqual({ n: 1 });
    expect(await cache.context("t1", db.load)).toEqual({ n: 1 });
    expect(await cache.context("t2", db.load)).toEqual({ n: 2 });
    cache.invalidate("t1");
    expect(await cache.context("t1", db.load)).toEqual({ n: 3 });
    expect(await cache.context("t2", db.load)).toEqual({ n: 2 });
    expect(changes).toEqual(["t1"]);
    // The feed lost: bypassed at once.
    feed.live = false;
    expect(await cache.context("t2", db.load)).toEqual({ n: 4 });
    remove();
  });

  it("does not store an answer whose read raced an invalidation", async () => {
    const cache = new TenantAccessCache<{ n: number }>();
    cache.addFeed({ live: true });
    let reads = 0;
    const slow = async () => {
      reads++;
      cache.invalidate("t1"); // the change committed while this read was in flight
      return { n: reads };
    };
    await cache.context("t1", slow);
    await cache.context("t1", slow);
    expect(reads).toBe(2);
  });

  it("knows which events change a tenant's access", () => {
    expect(accessChangeOf({ type: "nexus.events.v1.PolicyDeleted", payload: { tenantId: "t1" } })).toBe("t1");
    expect(accessChangeOf({ type: "nexus.events.v1.DocumentAccessSettingsChanged", payload: { tenantId: "t1" } })).toBe("t1");
    expect(accessChangeOf({ type: "nexus.events.v1.PolicySaved", payload: {} })).toBeUndefined();
    expect(accessChangeOf({ type: "nexus.events.v1.DocumentsWithheld", payload: { tenantId: "t1" } })).toBeNull();
  });
});
