import { type CoordinationV1Api, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import { isAlreadyExists, isConflict, isNotFound } from "./api-errors.js";

/** Options of {@link LeaseLock}. */
export interface LeaseLockOptions {
  coordination: CoordinationV1Api;
  namespace: string;
  /** Lease name. */
  name: string;
  /** Who holds it when we do (pod name, or `<namespace>/<failover>`). */
  identity: string;
  /** How long a holder keeps the lease without renewing. */
  leaseDurationSeconds: number;
  clock?: () => Date;
}

/** What a Lease says about its holder. */
export interface LeaseHolder {
  holder: string | undefined;
  /** The holder stopped renewing (or released it). */
  expired: boolean;
  annotations: Record<string, string>;
}

function toDate(v: unknown): Date | undefined {
  if (v instanceof Date) return v;
  if (typeof v === "string" && v) return new Date(v);
  return undefined;
}

/**
 * A lock on a coordination.k8s.io/v1 Lease, the way client-go's leader election uses one:
 * the holder renews `renewTime`; anyone may take a lease whose holder has not renewed within
 * `leaseDurationSeconds`. Every write is a PUT with the resourceVersion just read, so two
 * candidates racing get one success and one 409 (which counts as "not acquired").
 */
export class LeaseLock {
  private readonly clock: () => Date;

  constructor(private readonly options: LeaseLockOptions) {
    this.clock = options.clock ?? (() => new Date());
  }

  /** The lease's identity string. */
  get identity(): string {
    return this.options.identity;
  }

  private holderOf(lease: V1Lease): LeaseHolder {
    const spec = lease.spec ?? {};
    const renew = toDate(spec.renewTime) ?? toDate(spec.acquireTime);
    const duration = (spec.leaseDurationSeconds ?? 0) * 1000;
    const expired = !spec.holderIdentity || !renew || renew.getTime() + duration <= this.clock().getTime();
    return { holder: spec.holderIdentity || undefined, expired, annotations: lease.metadata?.annotations ?? {} };
  }

  /** Reads the lease's holder (undefined when the lease does not exist). */
  async read(): Promise<LeaseHolder | undefined> {
    try {
      const lease = await this.options.coordination.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace });
      return this.holderOf(lease);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Acquires the lease, or renews it when we hold it. Returns false when someone else holds an
   * unexpired lease or won a concurrent write. `annotations` are merged onto the lease.
   */
  async tryAcquireOrRenew(annotations: Record<string, string> = {}): Promise<boolean> {
    const { coordination, namespace, name, identity, leaseDurationSeconds } = this.options;
    const now = new V1MicroTime(this.clock().getTime());
    let lease: V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name, namespace, annotations },
            spec: { holderIdentity: identity, leaseDurationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 },
          },
        });
        return true;
      } catch (createErr) {
        if (isAlreadyExists(createErr) || isConflict(createErr)) return false;
        throw createErr;
      }
    }
    const held = this.holderOf(lease);
    if (held.holder !== identity && !held.expired) return false;
    const spec = lease.spec ?? {};
    const taking = held.holder !== identity;
    try {
      await coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          metadata: { ...lease.metadata, annotations: { ...(lease.metadata?.annotations ?? {}), ...annotations } },
          spec: {
            ...spec,
            holderIdentity: identity,
            leaseDurationSeconds,
            renewTime: now,
            ...(taking ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
          },
        },
      });
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  /**
   * Gives the lease up when we hold it (holder cleared, so the next candidate takes it at once
   * instead of waiting for expiry). `annotations` are merged onto the lease (e.g. when a
   * failover finished, for the cooldown). Returns false when we did not hold it.
   */
  async release(annotations: Record<string, string> = {}): Promise<boolean> {
    const { coordination, namespace, name, identity } = this.options;
    let lease: V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
    if (lease.spec?.holderIdentity !== identity) return false;
    const { holderIdentity: _h, ...rest } = lease.spec;
    await coordination.replaceNamespacedLease({
      name,
      namespace,
      body: {
        ...lease,
        metadata: { ...lease.metadata, annotations: { ...(lease.metadata?.annotations ?? {}), ...annotations } },
        spec: { ...rest, leaseDurationSeconds: 1, renewTime: new V1MicroTime(this.clock().getTime()) },
      },
    });
    return true;
  }
}
