import { counter, gauge, histogram } from "../../kernel/metrics.js";
import type { CircuitState } from "../../kernel/resilience/index.js";

/** Buckets for time to first token and run duration (seconds): 5 ms to 2 minutes. */
const RUN_BUCKETS = [0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120];

/**
 * The agent's Prometheus metrics (default registry, served on /metrics):
 * - nexus_agent_time_to_first_token_seconds{provider} — acceptance to first token_delta;
 * - nexus_agent_run_duration_seconds{provider,status} — acceptance to the end of the run;
 * - nexus_agent_runs_total{provider,status} — accepted runs by how they ended
 *   (completed, failed, cancelled);
 * - nexus_agent_runs_refused_total{reason} — runs refused before acceptance
 *   (SERVICE_BUSY, QUOTA_EXCEEDED, …);
 * - nexus_agent_runs_in_flight — runs holding a bulkhead slot;
 * - nexus_agent_quota_unchecked_total — runs admitted without metering (fail-open);
 * - nexus_agent_circuit_state{dependency} — 0 closed, 1 half-open, 2 open.
 */
export function runMetrics() {
  return {
    timeToFirstToken: histogram(
      "nexus_agent_time_to_first_token_seconds",
      "Time from run acceptance to the first token_delta.",
      ["provider"],
      RUN_BUCKETS,
    ),
    runDuration: histogram(
      "nexus_agent_run_duration_seconds",
      "Time from run acceptance to the end of the run.",
      ["provider", "status"],
      RUN_BUCKETS,
    ),
    runs: counter("nexus_agent_runs_total", "Accepted runs by provider and outcome.", ["provider", "status"]),
    refused: counter("nexus_agent_runs_refused_total", "Runs refused before acceptance, by reason.", ["reason"]),
    inFlight: gauge("nexus_agent_runs_in_flight", "Runs in progress on this replica (bulkhead slots taken)."),
    quotaUnchecked: counter(
      "nexus_agent_quota_unchecked_total",
      "Runs admitted without a quota check because metering could not be reached.",
    ),
    circuitState: gauge("nexus_agent_circuit_state", "Circuit breaker state per dependency: 0 closed, 1 half-open, 2 open.", [
      "dependency",
    ]),
  };
}

/** The agent's metrics, as returned by {@link runMetrics}. */
export type RunMetrics = ReturnType<typeof runMetrics>;

/** The gauge value of a breaker state. */
export function circuitStateValue(state: CircuitState): number {
  return state === "closed" ? 0 : state === "half_open" ? 1 : 2;
}
