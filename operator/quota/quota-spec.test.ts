import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { HardCapMode, QuotaLimitsSchema, QuotaSchema, QuotaSource } from "../../gen/nexus/metering/v1/quota_pb.js";
import { quotaMatches, setQuotaRequest } from "./quota-spec.js";

describe("Quota spec → SetQuota", () => {
  const spec = {
    tenantRef: { name: "acme" },
    daily: { runs: 10 },
    monthly: { runs: 100, runUnits: 500 },
    softCapRatio: 0.5,
    hardCapMode: "Observe" as const,
  };

  it("maps limits, ratio and mode; leaves unset limits to the plan", () => {
    expect(setQuotaRequest("t1", spec)).toEqual({
      tenantId: "t1",
      dailyRunsLimit: 10n,
      monthlyRunsLimit: 100n,
      monthlyRunUnitsLimit: 500,
      softCapRatio: 0.5,
      hardCapMode: HardCapMode.OBSERVE,
    });
    expect(setQuotaRequest("t1", { tenantRef: { name: "a" } })).toEqual({
      tenantId: "t1",
      softCapRatio: 0.8,
      hardCapMode: HardCapMode.ENFORCE,
    });
  });

  it("matches only custom settings equal to the spec", () => {
    const inForce = create(QuotaSchema, {
      tenantId: "t1",
      source: QuotaSource.CUSTOM,
      softCapRatio: 0.5,
      hardCapMode: HardCapMode.OBSERVE,
      limits: create(QuotaLimitsSchema, { dailyRuns: 10n, monthlyRuns: 100n, monthlyRunUnits: 500, dailyRunUnits: 50 }),
    });
    expect(quotaMatches(inForce, spec)).toBe(true);
    expect(quotaMatches({ ...inForce, source: QuotaSource.PLAN }, spec)).toBe(false);
    expect(quotaMatches({ ...inForce, softCapRatio: 0.8 }, spec)).toBe(false);
    expect(quotaMatches(inForce, { ...spec, monthly: { runs: 101 } })).toBe(false);
    expect(quotaMatches(undefined, spec)).toBe(false);
  });
});
