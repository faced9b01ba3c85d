import { Gauge, register } from "prom-client";
import type { Failover } from "../crds/types.js";

/** Name of the gauge: when each Failover entered its current phase. */
export const FAILOVER_PHASE_METRIC = "nexus_operator_failover_phase_started_timestamp_seconds";

const sources = new Set<() => readonly Failover[]>();

/** Registers the gauge on the default registry (once); it has series only while a source is exported. */
export function ensureFailoverPhaseGauge(): void {
  if (register.getSingleMetric(FAILOVER_PHASE_METRIC)) return;
  new Gauge({
    name: FAILOVER_PHASE_METRIC,
    help: "Unix time at which each Failover entered its current phase (status.phaseStartedAt), by namespace, name and phase. Only the leader exports it.",
    labelNames: ["namespace", "name", "phase"],
    // Computed at scrape time from the controllers' caches: a Failover deleted or moved on
    // leaves no stale series behind.
    collect(this: Gauge<"namespace" | "name" | "phase">) {
      this.reset();
      for (const source of sources) {
        for (const fo of source()) {
          const phase = fo.status?.phase;
          const since = Date.parse(fo.status?.phaseStartedAt ?? "");
          if (!phase || Number.isNaN(since)) continue;
          this.set({ namespace: fo.metadata.namespace, name: fo.metadata.name, phase }, since / 1000);
        }
      }
    },
  });
}

/**
 * Exports {@link FAILOVER_PHASE_METRIC} from `cached` (the Failover controller's cache) until
 * the returned function is called. The NexusFailoverStuck alert reads it.
 */
export function exportFailoverPhases(cached: () => readonly Failover[]): () => void {
  ensureFailoverPhaseGauge();
  sources.add(cached);
  return () => {
    sources.delete(cached);
  };
}
