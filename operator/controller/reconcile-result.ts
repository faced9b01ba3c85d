/**
 * What a reconcile asks of the loop. Errors are thrown instead: a 409 Conflict is requeued at
 * once (the object changed under us; re-read and retry), anything else with backoff.
 */
export type ReconcileResult =
  /** The world matches the spec; nothing to do until the object changes. */
  | { kind: "done" }
  /** Look again after `ms` (progress to wait for, or a periodic resync). */
  | { kind: "requeueAfter"; ms: number };

/** Nothing more to do. */
export const done = (): ReconcileResult => ({ kind: "done" });

/** Reconcile again after `ms` milliseconds. */
export const requeueAfter = (ms: number): ReconcileResult => ({ kind: "requeueAfter", ms });

/** Namespace and name of the object a reconcile is about. */
export interface ObjectKey {
  namespace: string;
  name: string;
}

/** `namespace/name`, the work queue's key. */
export function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}

/** Splits a work queue key. */
export function parseKey(key: string): ObjectKey {
  const i = key.indexOf("/");
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
}

/** One kind's reconcile function: re-reads the object and drives the world toward its spec. */
export interface Reconciler {
  /** Kind name for logs and metrics ("Tenant", "Quota", "Failover"). */
  readonly kind: string;
  reconcile(key: ObjectKey): Promise<ReconcileResult>;
}
