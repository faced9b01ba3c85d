import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { EdgeQueue } from "./edge-queue.js";

describe("EdgeQueue (node:sqlite)", () => {
  const dirs: string[] = [];
  const open = (maxBytes = 1_000_000) => {
    const dir = mkdtempSync(path.join(tmpdir(), "edge-queue-"));
    dirs.push(dir);
    return { dir, queue: new EdgeQueue(dir, maxBytes) };
  };
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it("hands out one app's head in queue order, bounded by count and bytes (but always the first)", () => {
    const { queue } = open();
    for (let i = 0; i < 5; i++) {
      queue.enqueue("a", `a-${i}`, JSON.stringify({ i, pad: "x".repeat(90) }));
      queue.enqueue("b", `b-${i}`, JSON.stringify({ i }));
    }
    expect(queue.queuedApps().sort()).toEqual(["a", "b"]);
    expect(queue.head("a", 3, 1_000_000).map((m) => m.clientMessageId)).toEqual(["a-0", "a-1", "a-2"]);
    expect(queue.head("a", 10, 250).map((m) => m.clientMessageId)).toEqual(["a-0", "a-1"]);
    expect(queue.head("a", 10, 1).map((m) => m.clientMessageId)).toEqual(["a-0"]);
    expect(queue.head("c", 10, 1_000_000)).toEqual([]);
  });

  it("settles a batch in one go: accepted removed, refused set aside, counts kept across a reopen", () => {
    const { dir, queue } = open();
    for (let i = 0; i < 4; i++) queue.enqueue("a", `a-${i}`, JSON.stringify({ i }));
    const [m0, m1, m2] = queue.head("a", 3, 1_000_000);
    queue.settle([m0!, m2!], [{ m: m1!, code: "InvalidArgument", reason: "INVALID_ARGUMENT", message: "payload.x is required" }]);
    expect(queue.stats()).toMatchObject({ depth: 1, rejected: 1, bytes: Buffer.byteLength(JSON.stringify({ i: 3 })) });
    // Settling the same messages again (a resend after a crash) changes nothing.
    queue.settle([m0!, m2!], []);
    expect(queue.stats().depth).toBe(1);
    queue.close();
    const again = new EdgeQueue(dir, 1_000_000);
    expect(again.stats()).toMatchObject({ depth: 1, rejected: 1 });
    expect(again.head("a", 10, 1_000_000).map((m) => m.clientMessageId)).toEqual(["a-3"]);
    again.close();
  });

  it("group-commits concurrent enqueues: each answered after its commit, repeats are duplicates, past the bound refused", async () => {
    const { queue } = open(60);
    const outcomes = await Promise.allSettled([
      queue.enqueueSoon("a", "m-1", JSON.stringify({ n: 1, pad: "xxxxxxxxxx" })),
      queue.enqueueSoon("a", "m-1", JSON.stringify({ n: 1, pad: "xxxxxxxxxx" })),
      queue.enqueueSoon("a", "m-2", JSON.stringify({ n: 2, pad: "xxxxxxxxxx" })),
      queue.enqueueSoon("a", "m-3", JSON.stringify({ n: 3, pad: "xxxxxxxxxx" })),
    ]);
    expect(outcomes.map((o) => (o.status === "fulfilled" ? o.value.duplicate : (o.reason as Error).name))).toEqual([
      false,
      true,
      false,
      "QueueFullError",
    ]);
    expect(queue.head("a", 10, 1_000).map((m) => m.clientMessageId)).toEqual(["m-1", "m-2"]);
    expect(queue.stats().depth).toBe(2);
    queue.close();
  });
});
