import { describe, expect, it } from "vitest";
import { effectiveEntitlements, FEATURE_KEYS, PLANS, principalEntitlements } from "./plans.js";

const enabled = (plan: "free" | "pro" | "enterprise") =>
  effectiveEntitlements(plan)
    .features.filter((f) => f.enabled)
    .map((f) => f.key);

describe("plans and entitlements", () => {
  it("follows the plan matrix", () => {
    expect(enabled("free")).toEqual(["feature.retrieval.local_pgvector"]);
    expect(enabled("pro")).toEqual([
      "feature.agent.openai",
      "feature.audit_access",
      "feature.billing_webhook_test",
      "feature.corpora_patch_provider_config",
      "feature.cost_controls",
      "feature.cost_visibility",
      "feature.identity.sso",
      "feature.ops_admin_access",
      "feature.retrieval.gcp_vertex",
      "feature.retrieval.local_pgvector",
      "feature.tts",
    ]);
    expect(enabled("enterprise")).toEqual([...FEATURE_KEYS]);
  });

  it("includes 100 runs a month on free, 5,000 on pro, unlimited on enterprise", () => {
    expect(PLANS.free.monthlyRunAllowance).toBe(100);
    expect(PLANS.pro.monthlyRunAllowance).toBe(5_000);
    expect(PLANS.enterprise.monthlyRunAllowance).toBeUndefined();
  });

  it("applies overrides over the plan, with provenance and config", () => {
    const e = effectiveEntitlements("free", {
      features: [
        { featureKey: "feature.tts", enabled: true, config: { voices: ["nova"] } },
        { featureKey: "feature.retrieval.local_pgvector", enabled: false },
      ],
      monthlyRunAllowance: 250,
      maxActiveApiKeys: 7,
    });
    expect(e.features.find((f) => f.key === "feature.tts")).toEqual({
      key: "feature.tts",
      enabled: true,
      source: "override",
      config: { voices: ["nova"] },
    });
    expect(e.features.find((f) => f.key === "feature.retrieval.local_pgvector")).toMatchObject({ enabled: false, source: "override" });
    expect(e.features.find((f) => f.key === "feature.ops_admin_access")).toMatchObject({ enabled: false, source: "plan" });
    expect(e.monthlyRunAllowance).toBe(250);
    expect(e.maxActiveApiKeys).toBe(7);
    expect(effectiveEntitlements("pro", { features: [], unlimitedRuns: true }).monthlyRunAllowance).toBeUndefined();
    const compact = principalEntitlements(e);
    expect(compact.features["feature.tts"]).toBe(true);
    expect(compact.featureConfig["feature.tts"]).toEqual({ voices: ["nova"] });
  });
});
