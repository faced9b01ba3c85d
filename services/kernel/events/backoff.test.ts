import { describe, expect, it } from "vitest";
import { retryDelayMs } from "./backoff.js";

describe("retry backoff", () => {
  it("doubles from 1 s and caps at 5 min by default", () => {
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n))).toEqual([1_000, 2_000, 4_000, 8_000, 16_000]);
    expect(retryDelayMs(9)).toBe(256_000);
    expect(retryDelayMs(10)).toBe(300_000);
    expect(retryDelayMs(1_000)).toBe(300_000);
  });

  it("honours custom bounds and never goes below the initial delay", () => {
    expect(retryDelayMs(0, { initialMs: 20, maxMs: 100 })).toBe(20);
    expect(retryDelayMs(3, { initialMs: 20, maxMs: 100 })).toBe(80);
    expect(retryDelayMs(4, { initialMs: 20, maxMs: 100 })).toBe(100);
  });
});
