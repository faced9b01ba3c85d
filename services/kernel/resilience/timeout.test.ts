import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { TimeoutError, withTimeout } from "./timeout.js";

/** Work that honours its signal, like fetch does. */
const work =
  (ms: number, value = "done") =>
  (signal: AbortSignal) =>
    sleep(ms, value, { signal });

describe("withTimeout (cockatiel's cooperative timeout)", () => {
  it("returns what a call that finishes in time returns", async () => {
    await expect(withTimeout(1_000, work(5))).resolves.toBe("done");
  });

  it("aborts a call that runs too long and rejects with TimeoutError", async () => {
    const started = performance.now();
    const err = await withTimeout(50, work(5_000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TimeoutError);
    expect((err as TimeoutError).timeoutMs).toBe(50);
    expect((err as Error).message).toBe("timed out after 50 ms");
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("passes a caller's abort through as the call's own error, not as a timeout", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 20);
    const err = await withTimeout(5_000, work(5_000), controller.signal).catch((e: unknown) => e);
    expect(err).not.toBeInstanceOf(TimeoutError);
    expect((err as Error).name).toBe("AbortError");
  });

  it("passes a call's own failure through", async () => {
    await expect(withTimeout(1_000, async () => Promise.reject(new Error("refused")))).rejects.toThrow("refused");
  });
});
