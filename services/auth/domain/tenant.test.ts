import { describe, expect, it } from "vitest";
import { decideTenant, evolveTenant, type TenantCommand, type TenantEvent, type TenantState } from "./tenant.js";

const T0 = new Date("2026-01-01T00:00:00Z");
const created: TenantEvent = { type: "TenantCreated", tenantId: "t1", slug: "acme", displayName: "Acme", plan: "free", at: T0 };

function given(...events: TenantEvent[]) {
  const state = events.reduce<TenantState>((s, e) => evolveTenant(s, e), undefined);
  return {
    state,
    when: (command: TenantCommand) => decideTenant(command, state),
  };
}

describe("tenant decider", () => {
  it("creates once", () => {
    expect(given().when({ type: "CreateTenant", tenantId: "t1", slug: "acme", displayName: "Acme", plan: "free", now: T0 })).toEqual({
      kind: "accepted",
      events: [created],
    });
    expect(
      given(created).when({ type: "CreateTenant", tenantId: "t1", slug: "acme", displayName: "Acme", plan: "free", now: T0 }).kind,
    ).toBe("rejected");
  });

  it("suspends and resumes idempotently", () => {
    const suspended: TenantEvent = { type: "TenantSuspended", tenantId: "t1", reason: "unpaid", at: T0 };
    expect(given(created).when({ type: "SuspendTenant", reason: "unpaid", now: T0 })).toEqual({ kind: "accepted", events: [suspended] });
    expect(given(created, suspended).when({ type: "SuspendTenant", reason: "again", now: T0 })).toEqual({ kind: "accepted", events: [] });
    expect(given(created, suspended).state).toMatchObject({ status: "suspended", suspensionReason: "unpaid" });
    expect(given(created).when({ type: "ResumeTenant", now: T0 })).toEqual({ kind: "accepted", events: [] });
    expect(given(created, suspended).when({ type: "ResumeTenant", now: T0 })).toEqual({
      kind: "accepted",
      events: [{ type: "TenantResumed", tenantId: "t1", at: T0 }],
    });
  });

  it("changes the plan only when it differs", () => {
    expect(given(created).when({ type: "SetPlan", plan: "free", now: T0 })).toEqual({ kind: "accepted", events: [] });
    expect(given(created).when({ type: "SetPlan", plan: "pro", now: T0 })).toEqual({
      kind: "accepted",
      events: [{ type: "PlanChanged", tenantId: "t1", previousPlan: "free", plan: "pro", at: T0 }],
    });
  });

  it("validates overrides: known keys, once each, run allowance xor unlimited", () => {
    const g = given(created);
    expect(
      g.when({ type: "SetEntitlementOverrides", overrides: { features: [{ featureKey: "feature.nope", enabled: true }] }, now: T0 }),
    ).toMatchObject({ kind: "rejected", reason: "INVALID_ARGUMENT" });
    expect(
      g.when({
        type: "SetEntitlementOverrides",
        overrides: {
          features: [
            { featureKey: "feature.tts", enabled: true },
            { featureKey: "feature.tts", enabled: false },
          ],
        },
        now: T0,
      }),
    ).toMatchObject({ kind: "rejected", reason: "INVALID_ARGUMENT" });
    expect(
      g.when({ type: "SetEntitlementOverrides", overrides: { features: [], monthlyRunAllowance: 5, unlimitedRuns: true }, now: T0 }),
    ).toMatchObject({ kind: "rejected" });
    const ok = g.when({
      type: "SetEntitlementOverrides",
      overrides: { features: [{ featureKey: "feature.tts", enabled: true }] },
      now: T0,
    });
    expect(ok).toMatchObject({ kind: "accepted", events: [{ type: "EntitlementOverridesChanged" }] });
    expect(given(created).when({ type: "SetEntitlementOverrides", overrides: { features: [] }, now: T0 })).toEqual({
      kind: "accepted",
      events: [],
    });
  });

  it("renames only when the name differs, and refuses empty or over-long names", () => {
    expect(given(created).when({ type: "SetDisplayName", displayName: "Acme", now: T0 })).toEqual({ kind: "accepted", events: [] });
    const renamed: TenantEvent = {
      type: "TenantDisplayNameChanged",
      tenantId: "t1",
      previousDisplayName: "Acme",
      displayName: "Acme Research",
      at: T0,
    };
    expect(given(created).when({ type: "SetDisplayName", displayName: "Acme Research", now: T0 })).toEqual({
      kind: "accepted",
      events: [renamed],
    });
    expect(given(created, renamed).state).toMatchObject({ displayName: "Acme Research", updatedAt: T0 });
    expect(given(created).when({ type: "SetDisplayName", displayName: "", now: T0 })).toMatchObject({
      kind: "rejected",
      reason: "INVALID_ARGUMENT",
    });
    expect(given(created).when({ type: "SetDisplayName", displayName: "é".repeat(200), now: T0 }).kind).toBe("accepted");
    expect(given(created).when({ type: "SetDisplayName", displayName: "x".repeat(201), now: T0 })).toMatchObject({
      kind: "rejected",
      reason: "INVALID_ARGUMENT",
    });
    expect(given().when({ type: "SetDisplayName", displayName: "x", now: T0 })).toMatchObject({ kind: "rejected", reason: "NOT_FOUND" });
  });

  it("commands on a missing tenant are NOT_FOUND", () => {
    expect(given().when({ type: "SetPlan", plan: "pro", now: T0 })).toMatchObject({ kind: "rejected", reason: "NOT_FOUND" });
  });
});
