import { counter, gauge, histogram } from "../../services/kernel/metrics.js";
import { ensureFailoverPhaseGauge } from "../failover/failover-metrics.js";

/** Names of every metric the operator exports (the dashboard test accepts exactly these). */
export const OPERATOR_METRIC_NAMES = [
  "nexus_operator_reconcile_total",
  "nexus_operator_reconcile_errors_total",
  "nexus_operator_reconcile_duration_seconds",
  "nexus_operator_leader",
  // operator/failover/failover-metrics.ts (exported while a Failover exists)
  "nexus_operator_failover_phase_started_timestamp_seconds",
] as const;

/** Outcome label of nexus_operator_reconcile_total. */
export type ReconcileOutcome = "done" | "requeue" | "conflict" | "error";

/** The operator's metrics on prom-client's default registry (created on first use). */
export function operatorMetrics() {
  ensureFailoverPhaseGauge();
  return {
    /** nexus_operator_reconcile_total{kind,result} */
    reconciles: counter("nexus_operator_reconcile_total", "Reconciles by kind and result (done, requeue, conflict, error).", [
      "kind",
      "result",
    ]),
    /** nexus_operator_reconcile_errors_total{kind} */
    errors: counter("nexus_operator_reconcile_errors_total", "Reconciles that failed (and were retried with backoff), by kind.", ["kind"]),
    /** nexus_operator_reconcile_duration_seconds{kind} */
    duration: histogram("nexus_operator_reconcile_duration_seconds", "Time one reconcile took, by kind.", ["kind"]),
    /** nexus_operator_leader: 1 while this replica holds the leader Lease. */
    leader: gauge("nexus_operator_leader", "1 while this operator replica is the leader, else 0."),
  };
}
