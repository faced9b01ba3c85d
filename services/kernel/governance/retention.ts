import type { Logger } from "pino";
import type { Database, Queryable } from "../db/ports.js";
import { domainError } from "../errors.js";
import type { PeriodicTask } from "../service/define-service.js";
import { acquireLease, releaseLease } from "./leases.js";
import { type HoldScope, holdLockKey } from "./legal-holds.js";

/** What a retention policy can name (the table's CHECK). */
export const RETENTION_CATEGORIES = ["sessions", "documents", "audit", "usage"] as const;
export type RetentionCategory = (typeof RETENTION_CATEGORIES)[number];
/**
 * The categories some service applies today. A policy for another one is refused
 * (FAILED_PRECONDITION) rather than stored and silently never applied.
 */
export const APPLIED_RETENTION_CATEGORIES: readonly RetentionCategory[] = ["sessions", "documents", "audit", "usage"];
export type RetentionAction = "delete" | "anonymize";

/**
 * Why `anonymize` is not meaningful for a category (refused with INVALID_ARGUMENT when a
 * policy asks for it), or undefined where it is applied: sessions (titles, message texts and
 * citations emptied; ids, roles, times stay).
 */
export const ANONYMIZE_REFUSED: Readonly<Partial<Record<RetentionCategory, string>>> = {
  documents: "a document's content is the data: there is nothing left to keep once it is anonymized; use delete",
  audit: "audit entries are evidence (hash-chained, append-only): they are removed behind a signed checkpoint, never rewritten; use delete",
  usage: "usage records hold ids and counts, no content: there is nothing to anonymize; use delete",
};

export interface RetentionPolicy {
  tenantId: string;
  category: RetentionCategory;
  maxAgeDays: number;
  action: RetentionAction;
}

/**
 * One table a service expires under a category. The service that owns the table declares it
 * and runs {@link retentionTask} — no service touches another's tables (the import rule).
 * Rows are expired by `timeColumn` older than the policy's age; a row whose `idColumn` is
 * under a hold of `holdScope` (or whose tenant is under a tenant hold) is kept and counted.
 * Tables referencing the expired rows must cascade (e.g. agent.messages → agent.sessions).
 */
export interface RetentionTarget {
  category: RetentionCategory;
  /** Schema-qualified table, e.g. `agent.sessions`. */
  table: string;
  idColumn: string;
  timeColumn: string;
  holdScope: Exclude<HoldScope, "tenant">;
  /** The column holding the id a hold of `holdScope` names (default `idColumn`), e.g. a message's `session_id`. */
  holdColumn?: string;
  /**
   * More holds that cover a row: a hold of `scope` on the id the SQL expression `subject`
   * yields for the row (a column, or a subquery of the service's own tables, e.g. the key that
   * started a message's session). Declared by the service's code, never from input.
   */
  moreHolds?: ReadonlyArray<{ scope: Exclude<HoldScope, "tenant">; subject: string }>;
  /**
   * How the `anonymize` action rewrites an expired row (column → SQL expression). Without it
   * the target only supports `delete` and an `anonymize` policy is reported as not applied.
   */
  anonymize?: Readonly<Record<string, string>>;
  /** Rows per statement (default 500). */
  batchSize?: number;
}

/**
 * Retention a service applies its own way (not a plain DELETE/UPDATE of expired rows): ingestion
 * deletes documents through its delete command, the audit trail removes entries behind a
 * signed checkpoint. `apply` returns the run's report for the tenant (expired 0: nothing to report).
 */
export interface CustomRetention {
  category: RetentionCategory;
  /** The name the report gives, e.g. `ingestion.documents`. */
  target: string;
  apply(db: Database, tenantId: string, action: RetentionAction, cutoff: Date): Promise<RetentionReport>;
}

/** A report with nothing counted yet, for a custom retention to fill in. */
export function newRetentionReport(
  tenantId: string,
  category: RetentionCategory,
  target: string,
  action: RetentionAction,
  cutoff: Date,
): RetentionReport {
  return { tenantId, category, target, action, cutoff, expired: 0, removed: 0, held: 0, heldBy: [], skippedReason: "" };
}

/** An active hold as a custom retention reads it. */
export interface ActiveHold {
  hold_id: string;
  scope: HoldScope;
  subject_id: string;
}

/**
 * For a custom retention, inside its deleting transaction: the shared side of the tenant's hold
 * lock (a hold placed meanwhile waits, or is seen), then the tenant's active holds, the tenant
 * hold if any, and the subject ids held per scope.
 */
export async function retentionHolds(
  tx: Queryable,
  tenantId: string,
): Promise<{ holds: ActiveHold[]; tenantHold: ActiveHold | undefined; of(scope: HoldScope): string[] }> {
  await tx.query("SELECT pg_advisory_xact_lock_shared($1::bigint)", [holdLockKey(tenantId)]);
  const { rows: holds } = await tx.query<ActiveHold>(
    "SELECT hold_id, scope, subject_id FROM platform.legal_holds WHERE tenant_id = $1 AND released_at IS NULL ORDER BY placed_at, hold_id",
    [tenantId],
  );
  return {
    holds,
    tenantHold: holds.find((h) => h.scope === "tenant"),
    of: (scope) => holds.filter((h) => h.scope === scope).map((h) => h.subject_id),
  };
}

/** Marks a report as kept whole by a tenant hold. */
export function keptByTenantHold(report: RetentionReport, holdId: string): RetentionReport {
  report.held = report.expired - report.removed;
  report.heldBy = [holdId];
  report.skippedReason = `legal hold ${holdId} covers tenant ${report.tenantId}`;
  return report;
}

const isCustom = (t: RetentionTarget | CustomRetention): t is CustomRetention => "apply" in t;
const targetName = (t: RetentionTarget | CustomRetention) => (isCustom(t) ? t.target : t.table);

/** How long one replica may hold a tenant's retention of one table before another may take over. */
const RETENTION_LEASE_MS = 30 * 60_000;

/** What one run did for one tenant and target: the report row. */
export interface RetentionReport {
  tenantId: string;
  category: RetentionCategory;
  target: string;
  action: RetentionAction;
  cutoff: Date;
  /** Rows older than the cutoff. */
  expired: number;
  /** Rows deleted or anonymized. */
  removed: number;
  /** Expired rows kept because a legal hold covers them. */
  held: number;
  heldBy: string[];
  /** Why nothing (or not everything) was done, empty when everything expired was removed. */
  skippedReason: string;
}

const IDENT = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;

function checkTarget(t: RetentionTarget): void {
  for (const name of [t.table, t.idColumn, t.timeColumn, t.holdColumn ?? t.idColumn, ...Object.keys(t.anonymize ?? {})]) {
    if (!IDENT.test(name)) throw new Error(`retention target ${t.table}: ${name} is not a plain SQL identifier`);
  }
}

/** Sets (or replaces) the tenant's policy for a category. */
export async function setRetentionPolicy(q: Queryable, p: RetentionPolicy): Promise<RetentionPolicy> {
  if (!RETENTION_CATEGORIES.includes(p.category)) {
    throw domainError("INVALID_ARGUMENT", `retention category must be one of ${RETENTION_CATEGORIES.join(", ")}`, {
      category: String(p.category),
    });
  }
  if (!APPLIED_RETENTION_CATEGORIES.includes(p.category)) {
    throw domainError(
      "FAILED_PRECONDITION",
      `retention of ${p.category} is not applied yet (only ${APPLIED_RETENTION_CATEGORIES.join(", ")}); see docs/governance.md`,
      { category: p.category },
    );
  }
  if (!Number.isInteger(p.maxAgeDays) || p.maxAgeDays < 1) {
    throw domainError("INVALID_ARGUMENT", "retention max age must be a whole number of days, at least 1", { max_age_days: p.maxAgeDays });
  }
  if (p.action !== "delete" && p.action !== "anonymize") {
    throw domainError("INVALID_ARGUMENT", "retention action must be delete or anonymize", { action: String(p.action) });
  }
  const refused = p.action === "anonymize" ? ANONYMIZE_REFUSED[p.category] : undefined;
  if (refused) {
    throw domainError("INVALID_ARGUMENT", `${p.category} cannot be anonymized: ${refused}`, { category: p.category, action: p.action });
  }
  await q.query(
    `INSERT INTO platform.retention_policies (tenant_id, category, max_age_days, action) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, category) DO UPDATE SET max_age_days = EXCLUDED.max_age_days, action = EXCLUDED.action, updated_at = now()`,
    [p.tenantId, p.category, p.maxAgeDays, p.action],
  );
  return p;
}

/** Removes the tenant's policy for a category (data is then kept forever); true when there was one. */
export async function clearRetentionPolicy(q: Queryable, tenantId: string, category: RetentionCategory): Promise<boolean> {
  const r = await q.query("DELETE FROM platform.retention_policies WHERE tenant_id = $1 AND category = $2", [tenantId, category]);
  return r.rowCount > 0;
}

/** Policies, of one tenant or of all. */
export async function listRetentionPolicies(q: Queryable, tenantId?: string): Promise<RetentionPolicy[]> {
  const { rows } = await q.query<{ tenant_id: string; category: RetentionCategory; max_age_days: number; action: RetentionAction }>(
    `SELECT tenant_id, category, max_age_days, action FROM platform.retention_policies
     ${tenantId === undefined ? "" : "WHERE tenant_id = $1"} ORDER BY tenant_id, category`,
    tenantId === undefined ? [] : [tenantId],
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, category: r.category, maxAgeDays: r.max_age_days, action: r.action }));
}

/** The latest reports, newest first. */
export async function listRetentionReports(q: Queryable, tenantId?: string, limit = 50): Promise<(RetentionReport & { ranAt: Date })[]> {
  const { rows } = await q.query<RetentionReport & { ranAt: Date }>(
    `SELECT tenant_id AS "tenantId", category, target, action, cutoff, expired, removed, held, held_by AS "heldBy",
            skipped_reason AS "skippedReason", ran_at AS "ranAt"
     FROM platform.retention_reports ${tenantId === undefined ? "" : "WHERE tenant_id = $2"}
     ORDER BY report_id DESC LIMIT $1`,
    tenantId === undefined ? [limit] : [limit, tenantId],
  );
  return rows;
}

/**
 * Applies every tenant's policy to the targets once and stores one report per tenant and
 * target that had expired rows. Each batch is one transaction that takes the shared side of
 * the tenant's hold lock and re-reads the holds, so a hold placed concurrently is either seen
 * by the batch or waits until it committed.
 */
export async function runRetention(
  db: Database,
  targets: readonly (RetentionTarget | CustomRetention)[],
  now: () => Date = () => new Date(),
): Promise<RetentionReport[]> {
  for (const t of targets) if (!isCustom(t)) checkTarget(t);
  const reports: RetentionReport[] = [];
  const categories = [...new Set(targets.map((t) => t.category))];
  if (categories.length === 0) return reports;
  const { rows: policies } = await db.query<{
    tenant_id: string;
    category: RetentionCategory;
    max_age_days: number;
    action: RetentionAction;
  }>(
    "SELECT tenant_id, category, max_age_days, action FROM platform.retention_policies WHERE category = ANY($1::text[]) ORDER BY tenant_id, category",
    [categories],
  );
  for (const policy of policies) {
    const cutoff = new Date(now().getTime() - policy.max_age_days * 86_400_000);
    for (const target of targets.filter((t) => t.category === policy.category)) {
      // One replica at a time applies a tenant's policy to a table (the per-tenant lock): the
      // others skip it this round.
      const lease = `retention:${policy.tenant_id}:${targetName(target)}`;
      if (!(await acquireLease(db, lease, RETENTION_LEASE_MS))) continue;
      let report: RetentionReport;
      try {
        report = isCustom(target)
          ? await target.apply(db, policy.tenant_id, policy.action, cutoff)
          : await applyPolicy(db, target, policy.tenant_id, policy.action, cutoff);
      } finally {
        await releaseLease(db, lease);
      }
      if (report.expired === 0) continue;
      // A run that removed nothing and found what the last report found (rows kept under the
      // same holds) adds no report: a long hold does not write one every interval.
      if (report.removed === 0) {
        const { rows: last } = await db.query<{ same: boolean }>(
          `SELECT (expired = $4 AND removed = 0 AND held = $5 AND held_by = $6::text[] AND skipped_reason = $7) AS same
           FROM platform.retention_reports WHERE tenant_id = $1 AND category = $2 AND target = $3 ORDER BY report_id DESC LIMIT 1`,
          [report.tenantId, report.category, report.target, report.expired, report.held, report.heldBy, report.skippedReason],
        );
        if (last[0]?.same) continue;
      }
      await db.query(
        `INSERT INTO platform.retention_reports (tenant_id, category, target, action, cutoff, expired, removed, held, held_by, skipped_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          report.tenantId,
          report.category,
          report.target,
          report.action,
          report.cutoff,
          report.expired,
          report.removed,
          report.held,
          report.heldBy,
          report.skippedReason,
        ],
      );
      reports.push(report);
    }
  }
  return reports;
}

async function applyPolicy(
  db: Database,
  t: RetentionTarget,
  tenantId: string,
  action: RetentionAction,
  cutoff: Date,
): Promise<RetentionReport> {
  const report = newRetentionReport(tenantId, t.category, t.table, action, cutoff);
  const batch = t.batchSize ?? 500;
  const anonymized = action === "anonymize" ? t.anonymize : undefined;
  // Rows anonymized by an earlier run are not expired again (no repeated work, no repeated reports).
  const pending = anonymized
    ? ` AND NOT (${Object.entries(anonymized)
        .map(([c, e]) => `${c} IS NOT DISTINCT FROM ${e}`)
        .join(" AND ")})`
    : "";
  const count = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM ${t.table} WHERE tenant_id = $1 AND ${t.timeColumn} < $2${pending}`,
    [tenantId, cutoff],
  );
  report.expired = count.rows[0]?.n ?? 0;
  if (report.expired === 0) return report;
  if (action === "anonymize" && !anonymized) {
    report.skippedReason = `${t.table} cannot be anonymized; set the ${t.category} policy to delete`;
    return report;
  }
  const heldBy = new Set<string>();
  const subjects = [{ scope: t.holdScope, subject: t.holdColumn ?? t.idColumn }, ...(t.moreHolds ?? [])];
  // The ids already anonymized (or kept because held) are skipped by the cursor.
  let after = "";
  for (;;) {
    const done = await db.transaction(async (tx) => {
      await tx.query("SELECT pg_advisory_xact_lock_shared($1::bigint)", [holdLockKey(tenantId)]);
      const { rows: holds } = await tx.query<{ hold_id: string; scope: string; subject_id: string }>(
        `SELECT hold_id, scope, subject_id FROM platform.legal_holds
         WHERE tenant_id = $1 AND released_at IS NULL AND scope = ANY($2::text[])`,
        [tenantId, ["tenant", ...subjects.map((s) => s.scope)]],
      );
      const tenantHold = holds.find((h) => h.scope === "tenant");
      if (tenantHold) {
        heldBy.add(tenantHold.hold_id);
        report.held = report.expired - report.removed;
        report.skippedReason = `legal hold ${tenantHold.hold_id} covers tenant ${tenantId}`;
        return true;
      }
      const { rows } = await tx.query<{ id: string; subjects: string[] }>(
        `SELECT ${t.idColumn} AS id, ARRAY[${subjects.map((s) => `(${s.subject})::text`).join(", ")}] AS subjects FROM ${t.table}
         WHERE tenant_id = $1 AND ${t.timeColumn} < $2 AND ${t.idColumn} > $3${pending}
         ORDER BY ${t.idColumn} LIMIT $4 FOR UPDATE`,
        [tenantId, cutoff, after, batch],
      );
      if (rows.length === 0) return true;
      after = rows.at(-1)?.id ?? after;
      // The holds covering a row: one whose scope and subject match one of the row's subjects.
      const holdsOf = (r: { subjects: string[] }) =>
        holds.filter((h) => h.scope !== "tenant" && subjects.some((s, i) => s.scope === h.scope && r.subjects[i] === h.subject_id));
      const ids: string[] = [];
      for (const r of rows) {
        const covering = holdsOf(r);
        if (covering.length === 0) ids.push(r.id);
        for (const h of covering) heldBy.add(h.hold_id);
      }
      report.held += rows.length - ids.length;
      if (ids.length > 0) {
        const r = anonymized
          ? await tx.query(
              `UPDATE ${t.table} SET ${Object.entries(anonymized)
                .map(([c, e]) => `${c} = ${e}`)
                .join(", ")} WHERE tenant_id = $1 AND ${t.idColumn} = ANY($2::text[])`,
              [tenantId, ids],
            )
          : await tx.query(`DELETE FROM ${t.table} WHERE tenant_id = $1 AND ${t.idColumn} = ANY($2::text[])`, [tenantId, ids]);
        report.removed += r.rowCount;
      }
      return rows.length < batch;
    });
    if (done) break;
  }
  report.heldBy = [...heldBy].sort();
  if (!report.skippedReason && report.held > 0) report.skippedReason = `${report.held} kept under legal hold`;
  return report;
}

/** The periodic task a service adds to its parts to apply retention to its own tables. */
export function retentionTask(o: {
  db: Database;
  targets: readonly (RetentionTarget | CustomRetention)[];
  intervalMs: number;
  logger: Logger;
  now?: () => Date;
}): PeriodicTask {
  for (const t of o.targets) if (!isCustom(t)) checkTarget(t);
  return {
    name: `retention(${o.targets.map(targetName).join(",")})`,
    intervalMs: o.intervalMs,
    async run() {
      const reports = await runRetention(o.db, o.targets, o.now);
      for (const r of reports) {
        o.logger.info(
          { tenant: r.tenantId, target: r.target, removed: r.removed, held: r.held, skipped: r.skippedReason },
          "retention applied",
        );
      }
      return reports;
    },
  };
}
