import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Database, Queryable } from "../db/ports.js";
import type { PeriodicTask } from "../service/define-service.js";
import { createFieldCipher, type EncryptionAtRest, isSealedBytes } from "./field-cipher.js";
import type { Keyring } from "./keyring.js";

/**
 * A column a service seals with the keyring: the re-encryption job walks its rows of one tenant
 * in primary-key order and re-seals every value under the current data key version.
 */
export interface SealedField {
  /** Stable name in job progress, e.g. "retrieval.chunks.text". */
  name: string;
  purpose: string;
  /** Schema-qualified table with a `tenant_id` column. */
  table: string;
  /** The primary key columns after tenant_id (the walk's order and cursor). */
  key: readonly string[];
  column: string;
  /** "json": a jsonb column holding a JSON value, sealed as one JSON string `"nxk1.…"` of its text. */
  kind: "text" | "bytes" | "json";
}

/** Progress of one field of a re-encryption job. */
export interface FieldProgress {
  /** The last key walked (resume point); absent before the first batch. */
  cursor?: string[];
  scanned: number;
  resealed: number;
  done: boolean;
}

/** A re-encryption job: after `rotate`, every value of the tenant and purpose moves to `targetVersion`. */
export interface ReencryptJob {
  jobId: string;
  tenantId: string;
  purpose: string;
  targetVersion: number;
  status: "pending" | "running" | "done" | "failed";
  /** Which pass: "reseal" walks and re-seals; "verify" walks again after the grace and only then retires old versions. */
  phase: "reseal" | "verify";
  progress: Record<string, FieldProgress>;
  /** Data key versions destroyed when the job finished (nothing used them any more). */
  retiredVersions: number[];
  error: string;
  createdAt: Date;
  updatedAt: Date;
  finishedAt?: Date;
}

interface JobRow {
  job_id: string;
  tenant_id: string;
  purpose: string;
  target_version: number;
  status: ReencryptJob["status"];
  phase: ReencryptJob["phase"];
  progress: Record<string, FieldProgress>;
  retired_versions: number[];
  error: string;
  created_at: Date;
  updated_at: Date;
  finished_at: Date | null;
}

const JOB_COLUMNS =
  "job_id, tenant_id, purpose, target_version, status, phase, progress, retired_versions, error, created_at, updated_at, finished_at";

function job(row: JobRow): ReencryptJob {
  return {
    jobId: row.job_id,
    tenantId: row.tenant_id,
    purpose: row.purpose,
    targetVersion: row.target_version,
    status: row.status,
    phase: row.phase,
    progress: row.progress ?? {},
    retiredVersions: row.retired_versions ?? [],
    error: row.error,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    ...(row.finished_at ? { finishedAt: new Date(row.finished_at) } : {}),
  };
}

const IDENT = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

/**
 * Rotates the tenant's data key of `purpose` and queues the job that re-encrypts its existing
 * values (run by the services that own those values: {@link reencryptTask}). A job already
 * queued or running for the same tenant and purpose is replaced by the new one, which covers it
 * (it re-seals under the newer version).
 */
export async function startKeyRotation(
  db: Database,
  keyring: Keyring,
  scope: { tenantId: string; purpose: string },
): Promise<ReencryptJob> {
  const version = await keyring.rotate(scope);
  const jobId = randomUUID();
  const { rows } = await db.transaction(async (tx) => {
    await tx.query(
      `UPDATE platform.keyring_jobs SET status = 'failed', error = 'superseded by a newer rotation', updated_at = now(), finished_at = now()
       WHERE tenant_id = $1 AND purpose = $2 AND status IN ('pending', 'running')`,
      [scope.tenantId, scope.purpose],
    );
    return tx.query<JobRow>(
      `INSERT INTO platform.keyring_jobs (job_id, tenant_id, purpose, target_version) VALUES ($1, $2, $3, $4) RETURNING ${JOB_COLUMNS}`,
      [jobId, scope.tenantId, scope.purpose, version],
    );
  });
  return job(rows[0]!);
}

/** Jobs, newest first (optionally of one tenant). */
export async function listKeyringJobs(q: Queryable, options: { tenantId?: string; limit?: number } = {}): Promise<ReencryptJob[]> {
  const params: unknown[] = [];
  let where = "";
  if (options.tenantId) {
    params.push(options.tenantId);
    where = "WHERE tenant_id = $1";
  }
  params.push(options.limit ?? 100);
  const { rows } = await q.query<JobRow>(
    `SELECT ${JOB_COLUMNS} FROM platform.keyring_jobs ${where} ORDER BY created_at DESC, job_id LIMIT $${params.length}`,
    params,
  );
  return rows.map(job);
}

export async function getKeyringJob(q: Queryable, jobId: string): Promise<ReencryptJob | undefined> {
  const { rows } = await q.query<JobRow>(`SELECT ${JOB_COLUMNS} FROM platform.keyring_jobs WHERE job_id = $1`, [jobId]);
  return rows[0] ? job(rows[0]) : undefined;
}

/** Options of {@link runReencryptJobs}. */
export interface ReencryptOptions {
  db: Database;
  keyring: Keyring;
  /** The fields this process owns; a job runs when every field of its purpose is owned here. */
  fields: readonly SealedField[];
  mode: EncryptionAtRest;
  logger?: Logger;
  /** Rows per batch (one transaction each). Default 200. */
  batchSize?: number;
  /**
   * Time after the rotation before the verifying pass starts: every replica's cached "current
   * version" has expired by then (keyring cache: 5 s) and in-flight writes sealed under the old
   * version have committed. Default 60 s.
   */
  graceMs?: number;
  /** Stops after this many batches (tests simulate a crash); undefined: run to the end. */
  maxBatches?: number;
}

/**
 * Runs the queued jobs whose purpose the given fields cover, one at a time. A job claims itself
 * with a lease (`locked_until`): after a crash another process (or the next run) picks it up
 * where the cursor says. Each batch re-seals values below the target version (and values still
 * in the clear, when sealing is on) with compare-and-set updates, so writes that happen
 * meanwhile are never overwritten: the service stays up throughout. When the reseal pass is
 * done, a verifying pass after the grace period checks that nothing uses older versions and only
 * then destroys them (retirement). Returns how many jobs finished.
 */
export async function runReencryptJobs(options: ReencryptOptions): Promise<number> {
  const { db } = options;
  const purposes = [...new Set(options.fields.map((f) => f.purpose))];
  if (purposes.length === 0) return 0;
  let finished = 0;
  let budget = options.maxBatches ?? Number.POSITIVE_INFINITY;
  for (;;) {
    const claimed = await db.transaction(async (tx) => {
      const { rows } = await tx.query<JobRow>(
        `UPDATE platform.keyring_jobs SET status = 'running', locked_until = now() + interval '2 minutes', updated_at = now()
         WHERE job_id = (
           SELECT job_id FROM platform.keyring_jobs
           WHERE status IN ('pending', 'running') AND purpose = ANY($1::text[]) AND (locked_until IS NULL OR locked_until < now())
           ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING ${JOB_COLUMNS}`,
        [purposes],
      );
      return rows[0] ? job(rows[0]) : undefined;
    });
    if (!claimed) return finished;
    try {
      const outcome = await runOne(options, claimed, () => budget-- > 0);
      if (outcome === "stopped") return finished;
      if (outcome === "done") finished++;
      if (outcome === "waiting") return finished;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      options.logger?.error({ err, job_id: claimed.jobId }, "re-encryption job failed");
      await db.query(
        "UPDATE platform.keyring_jobs SET status = 'failed', error = $2, updated_at = now(), finished_at = now(), locked_until = NULL WHERE job_id = $1",
        [claimed.jobId, message.slice(0, 1000)],
      );
    }
  }
}

async function runOne(options: ReencryptOptions, j: ReencryptJob, mayContinue: () => boolean): Promise<"done" | "stopped" | "waiting"> {
  const { db, keyring } = options;
  const batchSize = options.batchSize ?? 200;
  const scope = { tenantId: j.tenantId, purpose: j.purpose };
  const cipher = createFieldCipher(keyring, j.purpose, options.mode);
  const fields = options.fields.filter((f) => f.purpose === j.purpose);
  for (const f of fields)
    if (!IDENT.test(f.table) || !IDENT.test(f.column) || !f.key.every((k) => IDENT.test(k))) throw new Error(`bad field ${f.name}`);
  let phase = j.phase;
  const progress = j.progress;
  const save = async (extra = ", locked_until = now() + interval '2 minutes'", params: unknown[] = []) => {
    await db.query(
      `UPDATE platform.keyring_jobs SET phase = $2, progress = $3::jsonb, updated_at = now()${extra}
       WHERE job_id = $1`,
      [j.jobId, phase, JSON.stringify(progress), ...params],
    );
  };
  for (;;) {
    if (phase === "verify") {
      const { rows } = await db.query<{ ready: boolean }>(
        "SELECT created_at < now() - ($2::float8 * interval '1 millisecond') AS ready FROM platform.keyring_jobs WHERE job_id = $1",
        [j.jobId, options.graceMs ?? 60_000],
      );
      if (!rows[0]?.ready) {
        // Not yet: let go of the lease so the next run (or another process) continues.
        await db.query("UPDATE platform.keyring_jobs SET locked_until = NULL WHERE job_id = $1", [j.jobId]);
        return "waiting";
      }
    }
    let touched = 0;
    for (const f of fields) {
      const p = (progress[f.name] ??= { scanned: 0, resealed: 0, done: false });
      while (!p.done) {
        if (!mayContinue()) return "stopped";
        const n = await reencryptBatch(db, keyring, cipher.sealing, scope, j.targetVersion, f, p, batchSize);
        touched += n;
        await save();
      }
    }
    if (phase === "reseal") {
      // The verifying pass walks every field again from the start.
      phase = "verify";
      for (const f of fields) progress[f.name] = { scanned: 0, resealed: 0, done: false };
      await save();
      continue;
    }
    if (touched > 0) {
      // Something was still under an old version (a late write): walk once more.
      for (const f of fields) progress[f.name] = { scanned: 0, resealed: 0, done: false };
      await save();
      continue;
    }
    // Nothing uses versions below the target: destroy them (their values were all re-sealed).
    const { rows } = await db.query<{ version: number }>(
      `UPDATE platform.data_keys SET wrapped = NULL, destroyed_at = now()
       WHERE tenant_id = $1 AND purpose = $2 AND version < $3 AND wrapped IS NOT NULL RETURNING version`,
      [j.tenantId, j.purpose, j.targetVersion],
    );
    keyring.forget();
    const retired = rows.map((r) => r.version).sort((a, b) => a - b);
    await save(", status = 'done', retired_versions = $4::int[], finished_at = now(), locked_until = NULL", [retired]);
    options.logger?.info({ job_id: j.jobId, purpose: j.purpose, version: j.targetVersion, retired }, "re-encryption job done");
    return "done";
  }
}

/** One batch of one field: re-seals values below the target version; returns how many changed. */
async function reencryptBatch(
  db: Database,
  keyring: Keyring,
  sealing: boolean,
  scope: { tenantId: string; purpose: string },
  target: number,
  f: SealedField,
  p: FieldProgress,
  batchSize: number,
): Promise<number> {
  const keys = f.key.map((k) => `${k}::text AS "k_${k}"`).join(", ");
  const params: unknown[] = [scope.tenantId];
  let after = "";
  if (p.cursor) {
    const placeholders = p.cursor.map((v) => {
      params.push(v);
      return `$${params.length}`;
    });
    after = ` AND (${f.key.map((k) => `${k}::text`).join(", ")}) > (${placeholders.join(", ")})`;
  }
  params.push(batchSize);
  const order = f.key.map((k) => `${k}::text`).join(", ");
  const { rows } = await db.query<Record<string, unknown>>(
    `SELECT ${keys}, ${f.column} AS value FROM ${f.table} WHERE tenant_id = $1${after} ORDER BY ${order} LIMIT $${params.length}`,
    params,
  );
  let changed = 0;
  for (const row of rows) {
    const raw = row.value;
    if (raw === null || raw === undefined) continue;
    // A json field: a sealed value is a JSON string; anything else is plaintext JSON.
    const value: string | Uint8Array =
      f.kind === "json" ? (typeof raw === "string" && keyring.isSealedText(raw) ? raw : JSON.stringify(raw)) : (raw as string | Uint8Array);
    const sealed = typeof value === "string" ? keyring.isSealedText(value) : isSealedBytes(value);
    const version = sealed ? keyring.versionOf(value) : 0;
    if (sealed ? version >= target : !sealing) continue;
    const fresh =
      typeof value === "string"
        ? await keyring.sealText(scope, sealed ? await keyring.openText(scope, value) : value)
        : await keyring.seal(scope, sealed ? await keyring.open(scope, value) : value);
    const where = f.key.map((k, i) => `${k}::text = $${i + 3}`).join(" AND ");
    const json = f.kind === "json";
    const { rowCount } = await db.query(
      `UPDATE ${f.table} SET ${f.column} = ${json ? "to_jsonb($2::text)" : "$2"}
       WHERE tenant_id = $1 AND ${where} AND ${f.column} = ${json ? `$${f.key.length + 3}::jsonb` : `$${f.key.length + 3}`}`,
      [scope.tenantId, fresh, ...f.key.map((k) => row[`k_${k}`]), json ? (sealed ? JSON.stringify(value) : value) : value],
    );
    // 0: the row changed meanwhile (a new write, sealed under the current version) or is gone.
    changed += rowCount;
  }
  p.scanned += rows.length;
  p.resealed += changed;
  if (rows.length < batchSize) p.done = true;
  else {
    const last = rows[rows.length - 1]!;
    p.cursor = f.key.map((k) => String(last[`k_${k}`]));
  }
  return changed;
}

/** The periodic task that runs a service's re-encryption jobs (every `intervalMs`). */
export function reencryptTask(options: ReencryptOptions & { intervalMs?: number }): PeriodicTask {
  return { name: "keyring re-encryption", intervalMs: options.intervalMs ?? 5000, run: () => runReencryptJobs(options) };
}
