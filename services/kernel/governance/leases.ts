import { randomUUID } from "node:crypto";
import type { Queryable } from "../db/ports.js";

/**
 * Named leases in `platform.governance_leases`: the lock that lets several replicas run the
 * same governance task (retention per tenant and table, a data-subject request's part) without
 * doing the same work at once. A lease expires by itself (a crashed holder does not block for
 * longer than `ttlMs`); the holder releases it when done.
 */
const HOLDER = `${process.pid}-${randomUUID()}`;

/** Takes the lease when it is free or expired; false when another holder has it. */
export async function acquireLease(q: Queryable, name: string, ttlMs: number): Promise<boolean> {
  const { rowCount } = await q.query(
    `INSERT INTO platform.governance_leases (name, holder, until) VALUES ($1, $2, now() + make_interval(secs => $3::double precision / 1000))
     ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until
     WHERE platform.governance_leases.until < now() OR platform.governance_leases.holder = EXCLUDED.holder`,
    [name, HOLDER, ttlMs],
  );
  return rowCount > 0;
}

export async function releaseLease(q: Queryable, name: string): Promise<void> {
  await q.query("DELETE FROM platform.governance_leases WHERE name = $1 AND holder = $2", [name, HOLDER]);
}
