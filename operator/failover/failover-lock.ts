import type { CoordinationV1Api } from "@kubernetes/client-node";
import type { Failover } from "../crds/types.js";
import { LeaseLock } from "../kube/lease-lock.js";

/** Lease annotation holding when the last failover finished (RFC 3339), for the cooldown. */
export const LAST_FINISHED_ANNOTATION = "nexus.dev/last-finished-at";
/** Lease annotation naming the Failover that holds (or last held) the lock. */
export const HOLDER_ANNOTATION = "nexus.dev/failover";

/** Where the one-at-a-time Lease lives and how it behaves. */
export interface FailoverLockOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  /** Lease name. Default "nexus-failover". */
  name: string;
  /** A holder that stops renewing loses the lock after this long. */
  leaseDurationSeconds: number;
  /** Minimum time between the end of one failover and the start of the next. */
  cooldownSeconds: number;
  clock: () => Date;
}

/** The verdict of {@link acquireFailoverLock}. */
export type LockVerdict = { kind: "held" } | { kind: "busy"; holder: string } | { kind: "cooldown"; remainingMs: number };

/** The lock of one Failover: its identity is the object (namespace/name/uid), so a new leader continues it. */
export function failoverLease(options: FailoverLockOptions, failover: Failover): LeaseLock {
  return new LeaseLock({
    coordination: options.coordination,
    namespace: options.namespace,
    name: options.name,
    identity: `${failover.metadata.namespace}/${failover.metadata.name}/${failover.metadata.uid ?? ""}`,
    leaseDurationSeconds: options.leaseDurationSeconds,
    clock: options.clock,
  });
}

/**
 * Takes (or renews) the failover Lease for this Failover. `respectCooldown` applies when a new
 * run starts: the previous run must have finished at least cooldownSeconds ago.
 */
export async function acquireFailoverLock(
  options: FailoverLockOptions,
  failover: Failover,
  respectCooldown: boolean,
): Promise<LockVerdict> {
  const lease = failoverLease(options, failover);
  const current = await lease.read();
  if (current?.holder && current.holder !== lease.identity && !current.expired) {
    return { kind: "busy", holder: current.annotations[HOLDER_ANNOTATION] ?? current.holder };
  }
  if (respectCooldown && current?.holder !== lease.identity) {
    const last = current?.annotations[LAST_FINISHED_ANNOTATION];
    if (last) {
      const remainingMs = new Date(last).getTime() + options.cooldownSeconds * 1000 - options.clock().getTime();
      if (remainingMs > 0) return { kind: "cooldown", remainingMs };
    }
  }
  const ok = await lease.tryAcquireOrRenew({ [HOLDER_ANNOTATION]: `${failover.metadata.namespace}/${failover.metadata.name}` });
  if (!ok) return { kind: "busy", holder: "another failover (lost the race)" };
  return { kind: "held" };
}

/** Releases the Lease if this Failover holds it, stamping the finish time for the cooldown. */
export async function releaseFailoverLock(options: FailoverLockOptions, failover: Failover): Promise<void> {
  await failoverLease(options, failover).release({ [LAST_FINISHED_ANNOTATION]: options.clock().toISOString() });
}
