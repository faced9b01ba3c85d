import type { PlanName, PrincipalEntitlements } from "../context.js";

/**
 * The plan catalog: which features each plan enables and how many runs it includes.
 *
 * Feature keys and the plan matrix keep the names earlier deployments used, so existing
 * clients' feature checks keep working; run allowances: free 100 runs a month, pro 5,000,
 * enterprise unlimited (docs/security.md, "Plans and entitlements").
 */

/** Every feature the installation knows, sorted by key. */
export const FEATURE_KEYS = [
  "feature.agent.openai",
  "feature.audit_access",
  "feature.billing_webhook_test",
  "feature.chargeback_reports",
  "feature.corpora_patch_provider_config",
  "feature.cost_controls",
  "feature.cost_visibility",
  "feature.high_quota_tier",
  "feature.identity.jit",
  "feature.identity.scim",
  "feature.identity.sso",
  "feature.ops_admin_access",
  "feature.retrieval.aws_bedrock_kb",
  "feature.retrieval.gcp_vertex",
  "feature.retrieval.local_pgvector",
  "feature.tts",
] as const;

/** One of {@link FEATURE_KEYS}. */
export type FeatureKey = (typeof FEATURE_KEYS)[number];

/** The plans, cheapest first. */
export const PLAN_NAMES: readonly PlanName[] = ["free", "pro", "enterprise"];

/** What a plan grants by default. */
export interface PlanDefinition {
  /** Features the plan enables (every other known feature is disabled). */
  features: ReadonlySet<FeatureKey>;
  /** Runs per UTC calendar month; `undefined` = unlimited. */
  monthlyRunAllowance: number | undefined;
}

const FREE: FeatureKey[] = ["feature.retrieval.local_pgvector"];
const PRO: FeatureKey[] = [
  ...FREE,
  // Remote model providers (the agent's `openai` provider); the offline extractive one is for all.
  "feature.agent.openai",
  "feature.retrieval.gcp_vertex",
  "feature.tts",
  "feature.ops_admin_access",
  "feature.audit_access",
  "feature.corpora_patch_provider_config",
  "feature.billing_webhook_test",
  "feature.identity.sso",
  "feature.cost_visibility",
  "feature.cost_controls",
];
const ENTERPRISE: FeatureKey[] = [...FEATURE_KEYS];

/** The plan matrix. */
export const PLANS: Readonly<Record<PlanName, PlanDefinition>> = {
  free: { features: new Set(FREE), monthlyRunAllowance: 100 },
  pro: { features: new Set(PRO), monthlyRunAllowance: 5_000 },
  enterprise: { features: new Set(ENTERPRISE), monthlyRunAllowance: undefined },
};

/** Per-tenant exceptions to the plan (what SetEntitlementOverrides stores). */
export interface EntitlementOverrides {
  /** Features switched on or off regardless of the plan, with optional settings. */
  features: readonly FeatureOverride[];
  /** Replaces the plan's monthly run allowance. */
  monthlyRunAllowance?: number;
  /** Unlimited runs regardless of the plan (exclusive with monthlyRunAllowance). */
  unlimitedRuns?: boolean;
  /** Replaces the installation's cap on active API keys for this tenant. */
  maxActiveApiKeys?: number;
}

/** One feature switched on or off for a tenant. */
export interface FeatureOverride {
  featureKey: string;
  enabled: boolean;
  config?: Readonly<Record<string, unknown>>;
}

/** No overrides: the plan decides everything. */
export const NO_OVERRIDES: EntitlementOverrides = Object.freeze({ features: Object.freeze([]) as readonly FeatureOverride[] });

/** True for a key of {@link FEATURE_KEYS}. */
export function isFeatureKey(key: string): key is FeatureKey {
  return (FEATURE_KEYS as readonly string[]).includes(key);
}

/** One effective feature, with where its value comes from. */
export interface EffectiveFeature {
  key: FeatureKey;
  enabled: boolean;
  source: "plan" | "override";
  config?: Readonly<Record<string, unknown>>;
}

/** A tenant's effective entitlements with provenance (what the Tenant message shows). */
export interface EffectiveEntitlements {
  /** Every known feature, sorted by key. */
  features: EffectiveFeature[];
  monthlyRunAllowance: number | undefined;
  maxActiveApiKeys: number | undefined;
}

/** The plan's defaults with the overrides applied. Unknown override keys are ignored. */
export function effectiveEntitlements(plan: PlanName, overrides: EntitlementOverrides = NO_OVERRIDES): EffectiveEntitlements {
  const definition = PLANS[plan];
  const byKey = new Map(overrides.features.map((f) => [f.featureKey, f]));
  const features = FEATURE_KEYS.map((key): EffectiveFeature => {
    const override = byKey.get(key);
    if (override === undefined) return { key, enabled: definition.features.has(key), source: "plan" };
    return { key, enabled: override.enabled, source: "override", ...(override.config ? { config: override.config } : {}) };
  });
  const monthlyRunAllowance = overrides.unlimitedRuns ? undefined : (overrides.monthlyRunAllowance ?? definition.monthlyRunAllowance);
  return { features, monthlyRunAllowance, maxActiveApiKeys: overrides.maxActiveApiKeys };
}

/** The compact form a principal carries. */
export function principalEntitlements(effective: EffectiveEntitlements): PrincipalEntitlements {
  const features: Record<string, boolean> = {};
  const featureConfig: Record<string, Readonly<Record<string, unknown>>> = {};
  for (const f of effective.features) {
    features[f.key] = f.enabled;
    if (f.config && Object.keys(f.config).length > 0) featureConfig[f.key] = f.config;
  }
  return {
    features,
    featureConfig,
    monthlyRunAllowance: effective.monthlyRunAllowance,
    maxActiveApiKeys: effective.maxActiveApiKeys,
  };
}
