import { describe, expect, it } from "vitest";
import { runUnits } from "./run-units.js";

describe("runUnits", () => {
  const rates = { tierMultipliers: { free: 1, pro: 1.5, enterprise: 2 }, toolCallOverhead: 0.25 };

  it("charges max(cpu, gpu) × the tier multiplier plus the tool-call overhead", () => {
    expect(runUnits({ cpuSeconds: 2, gpuSeconds: 0, toolCalls: 4 }, "pro", rates)).toEqual({
      runUnits: 2 * 1.5 + 4 * 0.25,
      tierMultiplier: 1.5,
      toolCallOverhead: 0.25,
    });
    expect(runUnits({ cpuSeconds: 0.5, gpuSeconds: 3, toolCalls: 0 }, "enterprise", rates).runUnits).toBe(6);
  });

  it("never credits a tenant for negative or broken measurements", () => {
    expect(runUnits({ cpuSeconds: -5, gpuSeconds: Number.NaN, toolCalls: -1 }, "free", rates).runUnits).toBe(0);
  });

  it("charges an unknown plan at the free multiplier and rounds to six decimals", () => {
    expect(runUnits({ cpuSeconds: 0.1 + 0.2, gpuSeconds: 0, toolCalls: 0 }, undefined, rates).runUnits).toBe(0.3);
  });
});
