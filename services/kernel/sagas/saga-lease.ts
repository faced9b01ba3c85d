import type { Queryable } from "../db/ports.js";

/**
 * One runner per saga across processes and replicas: a lease row in `platform.saga_leases`
 * (owner, lease_until), claimed before a runner drives the saga and renewed while it does.
 * Another process takes over only once the lease lapsed — its runner died (killed, crashed,
 * lost its database) without releasing it. Like the relay's checkpoint lease, nothing is held
 * open between claims (no session lock), so it works on pooled connections and on PGlite.
 */
export interface SagaLease {
  /** This runner's identity (host, pid, random suffix: `leaseOwnerId()`). */
  owner: string;
  /** How long a claim lasts without renewal (renewed every third of it while the saga runs). */
  ttlMs: number;
}

/** Who holds a saga's lease and until when. */
export interface SagaLeaseHolder {
  owner: string;
  until: Date;
}

/** Claims or renews the saga's lease: true when `lease.owner` holds it now. */
export async function claimSagaLease(db: Queryable, sagaId: string, lease: SagaLease): Promise<boolean> {
  const { rows } = await db.query<{ owner: string }>(
    `INSERT INTO platform.saga_leases (saga_id, owner, lease_until)
     VALUES ($1, $2, now() + $3 * interval '1 millisecond')
     ON CONFLICT (saga_id) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
       WHERE saga_leases.owner = EXCLUDED.owner OR saga_leases.lease_until < now()
     RETURNING owner`,
    [sagaId, lease.owner, lease.ttlMs],
  );
  return rows.length > 0;
}

/** Gives the lease up (the saga ended, or its runner stops) so another runner may claim it at once. */
export async function releaseSagaLease(db: Queryable, sagaId: string, owner: string): Promise<void> {
  await db.query("DELETE FROM platform.saga_leases WHERE saga_id = $1 AND owner = $2", [sagaId, owner]);
}

/** The live holder of a saga's lease, if any. */
export async function sagaLeaseHolder(db: Queryable, sagaId: string): Promise<SagaLeaseHolder | undefined> {
  const { rows } = await db.query<{ owner: string; lease_until: Date }>(
    "SELECT owner, lease_until FROM platform.saga_leases WHERE saga_id = $1 AND lease_until >= now()",
    [sagaId],
  );
  const r = rows[0];
  return r ? { owner: r.owner, until: r.lease_until } : undefined;
}
