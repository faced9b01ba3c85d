import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "./backoff.js";

describe("backoffDelayMs (the one exponential backoff)", () => {
  const bounds = { initialMs: 500, maxMs: 30_000 };

  it("doubles from the initial delay and caps at the longest", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelayMs(n, bounds))).toEqual([
      500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000,
    ]);
    expect(backoffDelayMs(1_000_000, bounds)).toBe(30_000);
  });

  it("treats attempts below 1 as the first", () => {
    expect(backoffDelayMs(0, bounds)).toBe(500);
    expect(backoffDelayMs(-3, bounds)).toBe(500);
  });

  it("with jitter, spreads each delay over [½, 1) of its value", () => {
    const jittered = { ...bounds, jitter: true };
    expect(backoffDelayMs(3, jittered, () => 0)).toBe(1_000);
    expect(backoffDelayMs(3, jittered, () => 0.5)).toBe(1_500);
    expect(backoffDelayMs(3, jittered, () => 0.999)).toBeLessThan(2_000);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelayMs(10, jittered);
      expect(d).toBeGreaterThanOrEqual(15_000);
      expect(d).toBeLessThan(30_000);
    }
  });
});
