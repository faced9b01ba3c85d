import { describe, expect, it } from "vitest";
import { WorkQueue } from "./work-queue.js";

describe("WorkQueue", () => {
  it("hands a key out once however often it is added, and never to two workers at once", async () => {
    const q = new WorkQueue();
    q.add("ns/a");
    q.add("ns/a");
    q.add("ns/b");
    expect(q.length).toBe(2);
    const first = await q.get();
    expect(first).toBe("ns/a");
    q.add("ns/a"); // changed while being processed: deferred, not handed out again
    expect(await q.get()).toBe("ns/b");
    expect(q.length).toBe(0);
    q.done("ns/a");
    expect(await q.get()).toBe("ns/a");
  });

  it("backs off exponentially per key up to the cap, and forget resets it", () => {
    const q = new WorkQueue({ baseDelayMs: 100, maxDelayMs: 1000 });
    expect([1, 2, 3, 4, 5, 6].map(() => q.addRateLimited("k"))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(q.retries("k")).toBe(6);
    q.forget("k");
    expect(q.addRateLimited("k")).toBe(100);
    q.shutDown();
  });

  it("delivers a delayed key after its delay, and resolves waiting workers with undefined on shutdown", async () => {
    const q = new WorkQueue();
    q.addAfter("later", 20);
    expect(q.length).toBe(0);
    expect(await q.get()).toBe("later");
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add("x");
    expect(await q.get()).toBeUndefined();
  });
});
