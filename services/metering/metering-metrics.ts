import { counter, gauge } from "../kernel/metrics.js";

/**
 * Metering's Prometheus metrics (names fixed: dashboards and REQ-009 depend on them). `org` is
 * the tenant id, `tier` its plan. Counted once per usage record, after the record is written.
 */
export const meteringMetrics = {
  /** Run units charged, by tenant and plan. */
  runUnits: counter("nexus_run_units_total", "Run units charged to tenants, by tenant (org) and plan tier", ["org", "tier"]),
  /** Metered runs, by tenant, plan and outcome (completed, failed, cancelled). */
  runs: counter("nexus_runs_total", "Metered agent runs, by tenant (org), plan tier and outcome", ["org", "tier", "outcome"]),
  /** Share of the tightest limit in use (used + in flight) / limit, per tenant and period. */
  quotaUsedRatio: gauge(
    "nexus_quota_used_ratio",
    "Highest (used + reserved) / limit over a tenant's limited quota metrics, per period (day, month)",
    ["org", "period"],
  ),
};
