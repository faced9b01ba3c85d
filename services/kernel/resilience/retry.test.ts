import { describe, expect, it } from "vitest";
import { retryPolicy } from "./retry.js";

class Transient extends Error {
  constructor(readonly retryAfterMs?: number) {
    super("transient");
  }
}

/** An operation failing `failures` times with `error()` before succeeding; records when each attempt began. */
function flaky(failures: number, error: () => unknown = () => new Transient()) {
  const startedAt: number[] = [];
  return {
    startedAt,
    run: async (n: number) => {
      startedAt.push(performance.now());
      expect(n).toBe(startedAt.length - 1);
      if (startedAt.length <= failures) throw error();
      return "ok";
    },
  };
}

const gaps = (t: number[]) => t.slice(1).map((x, i) => x - t[i]!);

describe("retryPolicy (cockatiel's retry with the kernel backoff)", () => {
  const retryWhen = (err: unknown) => err instanceof Transient;

  it("retries retryable failures with doubling delays and returns the first success", async () => {
    const op = flaky(3);
    const policy = retryPolicy({ maxRetries: 3, initialMs: 20, maxMs: 1_000, jitter: false, retryWhen });
    await expect(policy.execute(op.run)).resolves.toBe("ok");
    expect(op.startedAt.length).toBe(4);
    const [a, b, c] = gaps(op.startedAt);
    expect(a).toBeGreaterThanOrEqual(18);
    expect(b).toBeGreaterThanOrEqual(38);
    expect(c).toBeGreaterThanOrEqual(78);
  });

  it("gives up after maxRetries and throws the last error", async () => {
    const op = flaky(10);
    const policy = retryPolicy({ maxRetries: 2, initialMs: 1, retryWhen });
    await expect(policy.execute(op.run)).rejects.toBeInstanceOf(Transient);
    expect(op.startedAt.length).toBe(3);
  });

  it("throws an error it may not retry at once", async () => {
    const op = flaky(10, () => new Error("bad request"));
    const policy = retryPolicy({ maxRetries: 5, initialMs: 1, retryWhen });
    await expect(policy.execute(op.run)).rejects.toThrow("bad request");
    expect(op.startedAt.length).toBe(1);
  });

  it("waits at least what the failure asks for (Retry-After), capped at maxMs", async () => {
    const op = flaky(1, () => new Transient(120));
    const policy = retryPolicy({
      maxRetries: 1,
      initialMs: 1,
      maxMs: 1_000,
      retryWhen,
      retryAfterMs: (e) => (e as Transient).retryAfterMs,
    });
    await policy.execute(op.run);
    expect(gaps(op.startedAt)[0]).toBeGreaterThanOrEqual(115);
    const capped = flaky(1, () => new Transient(60_000));
    const quick = retryPolicy({ maxRetries: 1, initialMs: 1, maxMs: 50, retryWhen, retryAfterMs: (e) => (e as Transient).retryAfterMs });
    await quick.execute(capped.run);
    expect(gaps(capped.startedAt)[0]).toBeLessThan(1_000);
  });

  it("a cancelled caller is answered at once, mid-wait, and no further attempt starts", async () => {
    const op = flaky(10);
    const policy = retryPolicy({ maxRetries: 5, initialMs: 5_000, retryWhen });
    const controller = new AbortController();
    const started = performance.now();
    const pending = policy.execute(op.run, controller.signal);
    setTimeout(() => controller.abort(new Error("caller gave up")), 30);
    await expect(pending).rejects.toThrow("caller gave up");
    expect(performance.now() - started).toBeLessThan(2_000);
    expect(op.startedAt.length).toBe(1);
    await expect(policy.execute(op.run, controller.signal)).rejects.toThrow("caller gave up");
    expect(op.startedAt.length).toBe(1);
  });
});
