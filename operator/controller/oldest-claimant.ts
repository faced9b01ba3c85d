import type { CommonStatus, NexusResource } from "../crds/types.js";

/**
 * Which of several objects claiming one thing in Nexus (a tenant slug, a tenant's quota) owns
 * it: the oldest that is not being deleted (creationTimestamp, then namespace/name, so every
 * replica and every pass agrees). The others must leave the thing alone, or two objects would
 * overwrite each other on every resync and deleting either would undo the other.
 * Undefined when no live object claims it.
 */
export function oldestClaimant<T extends NexusResource<unknown, CommonStatus>>(claimants: readonly T[]): T | undefined {
  const key = (o: T) => `${o.metadata.creationTimestamp ?? ""}\u0000${o.metadata.namespace}/${o.metadata.name}`;
  return claimants.filter((o) => !o.metadata.deletionTimestamp).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))[0];
}

/** Whether `a` and `b` are the same object (same uid when both have one, else same namespace/name). */
export function sameObject(a: NexusResource<unknown, unknown>, b: NexusResource<unknown, unknown>): boolean {
  if (a.metadata.uid && b.metadata.uid) return a.metadata.uid === b.metadata.uid;
  return a.metadata.namespace === b.metadata.namespace && a.metadata.name === b.metadata.name;
}
