import { describe, expect, it } from "vitest";
import { keepTrying } from "./aftercare.js";
import { isPermanentStoreError } from "./run-recorder.js";

const fast = { initialMs: 5, maxMs: 20, budgetMs: 500 };

describe("keepTrying (what a run owes after its stream ended)", () => {
  it("retries a failing write with backoff until it succeeds", async () => {
    let calls = 0;
    const result = await keepTrying(
      async () => {
        calls += 1;
        if (calls < 4) throw Object.assign(new Error("Connection terminated unexpectedly"), {});
        return "stored";
      },
      { retry: fast, shouldRetry: () => true },
    );
    expect(result).toEqual({ kind: "done", value: "stored" });
    expect(calls).toBe(4);
  });

  it("gives up once the budget is spent, and at once on errors that are not worth retrying", async () => {
    const started = performance.now();
    const spent = await keepTrying(() => Promise.reject(new Error("down")), {
      retry: { initialMs: 10, maxMs: 20, budgetMs: 100 },
      shouldRetry: () => true,
    });
    expect(spent.kind).toBe("gave_up");
    expect(performance.now() - started).toBeLessThan(400);
    let calls = 0;
    const permanent = await keepTrying(
      () => {
        calls += 1;
        return Promise.reject(Object.assign(new Error("invalid byte sequence for encoding UTF8: 0x00"), { code: "22021" }));
      },
      { retry: fast, shouldRetry: (err) => !isPermanentStoreError(err) },
    );
    expect(permanent).toMatchObject({ kind: "gave_up", attempts: 1 });
    expect(calls).toBe(1);
  });

  it("tells store errors that fail again from those that may pass later", () => {
    expect(isPermanentStoreError(Object.assign(new Error("bad"), { code: "22021" }))).toBe(true);
    expect(isPermanentStoreError(Object.assign(new Error("dup"), { code: "23505" }))).toBe(true);
    expect(isPermanentStoreError(Object.assign(new Error("starting up"), { code: "57P03" }))).toBe(false);
    expect(isPermanentStoreError(Object.assign(new Error("connection failure"), { code: "08006" }))).toBe(false);
    expect(isPermanentStoreError(Object.assign(new Error("refused"), { code: "ECONNREFUSED" }))).toBe(false);
    expect(isPermanentStoreError(new Error("Connection terminated unexpectedly"))).toBe(false);
  });
});
