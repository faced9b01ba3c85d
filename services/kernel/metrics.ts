import type { Metric } from "prom-client";
import { Counter, Gauge, Histogram, register } from "prom-client";

/**
 * Get-or-create helpers for prom-client metrics on the DEFAULT registry (the one the server
 * serves on /metrics). Tests and `nexus dev` build many components in one process, so a
 * metric that already exists under the same name is reused instead of registered twice; a
 * clash of type or label names is a programming error and throws.
 */

function existing<M extends Metric>(
  name: string,
  kind: abstract new (...args: never[]) => M,
  labelNames: readonly string[],
): M | undefined {
  const found = register.getSingleMetric(name);
  if (found === undefined) return undefined;
  if (!(found instanceof kind)) {
    throw new Error(`metric ${name} is already registered with another type`);
  }
  const have = ((found as unknown as { labelNames?: readonly string[] }).labelNames ?? []).slice().sort();
  const want = [...labelNames].sort();
  if (have.join(",") !== want.join(",")) {
    throw new Error(`metric ${name} is already registered with labels [${have.join(", ")}], not [${want.join(", ")}]`);
  }
  return found;
}

/** A counter on the default registry (reused when it exists). */
export function counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
  return existing(name, Counter<L>, labelNames) ?? new Counter<L>({ name, help, labelNames });
}

/**
 * A histogram on the default registry (reused when it exists).
 * `buckets` default to {@link DURATION_BUCKETS_SECONDS}, suited to RPC latencies.
 */
export function histogram<L extends string = never>(
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: readonly number[] = DURATION_BUCKETS_SECONDS,
): Histogram<L> {
  return existing(name, Histogram<L>, labelNames) ?? new Histogram<L>({ name, help, labelNames, buckets: [...buckets] });
}

/** A gauge on the default registry (reused when it exists). */
export function gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
  return existing(name, Gauge<L>, labelNames) ?? new Gauge<L>({ name, help, labelNames });
}

/** Latency buckets (seconds) from 1 ms to 60 s: unary RPCs at the low end, streams at the top. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
]);
