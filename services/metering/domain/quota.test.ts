import { describe, expect, it } from "vitest";
import {
  decideAdmission,
  decideQuotaSettings,
  effectiveQuota,
  emptyWindow,
  evolveQuotaSettings,
  type WindowCounters,
  windowStanding,
} from "./quota.js";

const now = new Date("2025-03-10T12:00:00Z");
const day = (w: Partial<WindowCounters> = {}): WindowCounters => ({ ...emptyWindow("day", new Date("2025-03-10T00:00:00Z")), ...w });
const month = (w: Partial<WindowCounters> = {}): WindowCounters => ({ ...emptyWindow("month", new Date("2025-03-01T00:00:00Z")), ...w });
const free = { plan: "free" as const, monthlyRunAllowance: 100 };

describe("effectiveQuota", () => {
  it("takes the plan's monthly runs unless SetQuota gave limits", () => {
    const q = effectiveQuota(undefined, free, 0.8);
    expect(q).toMatchObject({ source: "plan", softCapRatio: 0.8, hardCapMode: "enforce" });
    expect(q.limits.month.runs).toBe(100);
    expect(q.limits.day.runs).toBeUndefined();
    const c = effectiveQuota({ dailyRuns: 5, hardCapMode: "observe", updatedAt: now }, free, 0.8);
    expect(c).toMatchObject({ source: "custom", hardCapMode: "observe" });
    expect(c.limits.day.runs).toBe(5);
    expect(c.limits.month.runs).toBe(100);
  });

  it("treats a SetQuota that sets nothing as a return to the plan (source PLAN)", () => {
    expect(effectiveQuota({ hardCapMode: "enforce", updatedAt: now }, free, 0.8)).toMatchObject({ source: "plan", hardCapMode: "enforce" });
    expect(effectiveQuota({ softCapRatio: 0.5, hardCapMode: "enforce", updatedAt: now }, free, 0.8).source).toBe("custom");
  });
});

describe("decideAdmission", () => {
  const q = effectiveQuota({ dailyRuns: 10, monthlyRuns: 100, hardCapMode: "enforce", updatedAt: now }, free, 0.8);

  it("counts in-flight reservations against the limit", () => {
    expect(decideAdmission({ estimatedRunUnits: 0, now }, q, { day: day({ runsUsed: 5, runsReserved: 4 }), month: month() }).kind).toBe(
      "admitted",
    );
    const refused = decideAdmission({ estimatedRunUnits: 0, now }, q, { day: day({ runsUsed: 5, runsReserved: 5 }), month: month() });
    expect(refused).toMatchObject({ kind: "refused", breach: { period: "day", metric: "runs", limit: 10, used: 10, remaining: 0 } });
  });

  it("reports the month when both periods are exhausted (it frees up last)", () => {
    const r = decideAdmission({ estimatedRunUnits: 0, now }, q, { day: day({ runsUsed: 10 }), month: month({ runsUsed: 100 }) });
    expect(r).toMatchObject({ kind: "refused", breach: { period: "month", resetsAt: new Date("2025-04-01T00:00:00Z") } });
  });

  it("marks the soft cap at 80% including the run being admitted", () => {
    const r = decideAdmission({ estimatedRunUnits: 0, now }, q, { day: day({ runsUsed: 7 }), month: month() });
    expect(r).toMatchObject({ kind: "admitted", decision: "soft_cap", softCaps: [{ period: "day", metric: "runs", limit: 10, used: 8 }] });
  });

  it("observe mode admits over the limit and reports the overage", () => {
    const observe = { ...q, hardCapMode: "observe" as const };
    const r = decideAdmission({ estimatedRunUnits: 0, now }, observe, { day: day({ runsUsed: 10 }), month: month() });
    expect(r).toMatchObject({ kind: "admitted", decision: "overage", overage: { period: "day", metric: "runs", used: 10 } });
  });

  it("checks run units with the caller's estimate", () => {
    const u = effectiveQuota({ dailyRunUnits: 10, hardCapMode: "enforce", updatedAt: now }, free, 0.8);
    expect(decideAdmission({ estimatedRunUnits: 3, now }, u, { day: day({ runUnitsUsed: 7 }), month: month() }).kind).toBe("admitted");
    expect(decideAdmission({ estimatedRunUnits: 3.5, now }, u, { day: day({ runUnitsUsed: 7 }), month: month() })).toMatchObject({
      kind: "refused",
      breach: { metric: "run_units", remaining: 3 },
    });
    expect(decideAdmission({ estimatedRunUnits: 0, now }, u, { day: day({ runUnitsUsed: 10 }), month: month() }).kind).toBe("refused");
  });
});

describe("windowStanding", () => {
  it("reports remaining capacity net of reservations and the cap flags", () => {
    const q = effectiveQuota(
      { dailyRuns: 10, hardCapMode: "enforce", updatedAt: now },
      { plan: "enterprise", monthlyRunAllowance: undefined },
      0.8,
    );
    const s = windowStanding(day({ runsUsed: 6, runsReserved: 2 }), q);
    expect(s).toMatchObject({ runsLimit: 10, runsRemaining: 2, softCapReached: true, hardCapReached: false, usedRatio: 0.8 });
    const m = windowStanding(month({ runsUsed: 6 }), q);
    expect(m).toMatchObject({ runsLimit: undefined, runsRemaining: undefined, softCapReached: false, usedRatio: undefined });
  });
});

describe("quota settings (SetQuota)", () => {
  const setQuota = (custom: { dailyRuns?: number; hardCapMode: "enforce" | "observe" }, actor = "key_admin") =>
    ({ type: "SetQuota", tenantId: "t1", custom, plan: free, defaultSoftCapRatio: 0.8, actor, now }) as const;

  it("Given the plan's defaults, When a daily limit is set, Then the event carries the effective settings before and after", () => {
    const [e, ...rest] = decideQuotaSettings(setQuota({ dailyRuns: 5, hardCapMode: "enforce" }), undefined);
    expect(rest).toEqual([]);
    expect(e).toMatchObject({
      type: "QuotaSettingsReplaced",
      tenantId: "t1",
      updatedBy: "key_admin",
      custom: { dailyRuns: 5, updatedAt: now },
    });
    expect(e?.previous).toMatchObject({ source: "plan", limits: { day: { runs: undefined }, month: { runs: 100 } } });
    expect(e?.quota).toMatchObject({ source: "custom", limits: { day: { runs: 5 }, month: { runs: 100 } }, updatedAt: now });
    expect(evolveQuotaSettings(undefined, e!)).toEqual({ custom: e!.custom, updatedBy: "key_admin" });
  });

  it("records a replacement even when the values do not change (who set it, and when, is the news)", () => {
    const state = { custom: { dailyRuns: 5, hardCapMode: "enforce" as const, updatedAt: new Date(0) }, updatedBy: "key_old" };
    const events = decideQuotaSettings(setQuota({ dailyRuns: 5, hardCapMode: "enforce" }, "key_new"), state);
    expect(events).toHaveLength(1);
    expect(events[0]?.previous.limits.day.runs).toBe(5);
    expect(evolveQuotaSettings(state, events[0]!).updatedBy).toBe("key_new");
  });
});
