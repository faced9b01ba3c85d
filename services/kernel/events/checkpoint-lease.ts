import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Queryable } from "../db/ports.js";

/** Checkpoint tables of the platform schema that carry a lease. */
export type CheckpointTable = "outbox_checkpoint" | "local_bus_checkpoints";

const KEY_COLUMN: Record<CheckpointTable, string> = {
  outbox_checkpoint: "relay",
  local_bus_checkpoints: "consumer",
};

/**
 * A leased checkpoint row: one reader (relay or local consumer) per name makes progress at a
 * time across replicas. The lease is a row with `owner` and `lease_until`, renewed by every
 * claim; another replica takes over once it lapses. Nothing is held open between claims (no
 * transaction, no session lock), which suits pooled connections and single-connection PGlite.
 */
export interface CheckpointLease {
  table: CheckpointTable;
  name: string;
  /** This process's identity; see {@link leaseOwnerId}. */
  owner: string;
  /** How long a claim lasts without renewal. */
  ttlMs: number;
}

/** A unique owner id for one relay/consumer instance: host, pid and a random suffix. */
export function leaseOwnerId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

/**
 * Claims or renews the lease; resolves to the checkpoint position when this owner holds it,
 * `undefined` when another live owner does. A missing row is created at `initialPosition`.
 */
export async function claimCheckpoint(db: Queryable, lease: CheckpointLease, initialPosition: bigint = 0n): Promise<bigint | undefined> {
  const t = lease.table;
  const key = KEY_COLUMN[t];
  const { rows } = await db.query<{ position: bigint }>(
    `INSERT INTO platform.${t} (${key}, position, owner, lease_until)
     VALUES ($1, $4, $2, now() + $3 * interval '1 millisecond')
     ON CONFLICT (${key}) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
       WHERE ${t}.owner = EXCLUDED.owner OR ${t}.owner IS NULL OR ${t}.lease_until IS NULL OR ${t}.lease_until < now()
     RETURNING position`,
    [lease.name, lease.owner, lease.ttlMs, initialPosition],
  );
  return rows[0]?.position;
}

/**
 * Moves the checkpoint forward (never back) if this owner still holds the lease; false when
 * the lease was lost (another replica took over and will redo the work — consumers are
 * idempotent and the relay is deduplicated by message id).
 */
export async function advanceCheckpoint(db: Queryable, lease: CheckpointLease, position: bigint): Promise<boolean> {
  const t = lease.table;
  const { rowCount } = await db.query(
    `UPDATE platform.${t} SET position = GREATEST(position, $3), updated_at = now()
     WHERE ${KEY_COLUMN[t]} = $1 AND owner = $2`,
    [lease.name, lease.owner, position],
  );
  return rowCount > 0;
}

/** Gives the lease up (on stop) so another replica can take over at once. */
export async function releaseCheckpoint(db: Queryable, lease: CheckpointLease): Promise<void> {
  await db.query(
    `UPDATE platform.${lease.table} SET lease_until = NULL, owner = NULL WHERE ${KEY_COLUMN[lease.table]} = $1 AND owner = $2`,
    [lease.name, lease.owner],
  );
}

/**
 * Moves the checkpoint back to `position` (never forward) if this owner holds the lease: the
 * relay replays events after it when the stream they were published to was lost.
 */
export async function rewindCheckpoint(db: Queryable, lease: CheckpointLease, position: bigint): Promise<boolean> {
  const t = lease.table;
  const { rowCount } = await db.query(
    `UPDATE platform.${t} SET position = LEAST(position, $3), updated_at = now()
     WHERE ${KEY_COLUMN[t]} = $1 AND owner = $2`,
    [lease.name, lease.owner, position],
  );
  return rowCount > 0;
}
