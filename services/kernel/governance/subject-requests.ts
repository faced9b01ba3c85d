import { createHash, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { DataSubjectRequestCompletedSchema, DataSubjectRequestFailedSchema } from "../../../gen/nexus/events/v1/governance_events_pb.js";
import { recordFacts } from "../commands/index.js";
import type { Database, Queryable, Tx } from "../db/ports.js";
import { domainError } from "../errors.js";
import { eventOf } from "../events/protobuf-event.js";
import type { Keyring } from "../keyring/index.js";
import type { PeriodicTask } from "../service/define-service.js";
import { acquireLease, releaseLease } from "./leases.js";
import { assertNoLegalHold } from "./legal-holds.js";

/**
 * Data-subject requests (docs/governance.md#data-subject-requests): export everything held
 * about a user, a session or an API key as a signed archive, or erase it — each a job with a
 * status in `platform.subject_requests`. No service reads another's tables (the import rule),
 * so every service that holds subject data contributes its own **part** with a periodic task
 * ({@link subjectRequestTask}); the task that stores the last expected part assembles the
 * archive (export) or the summary (erase) and closes the job.
 */

/** The event stream of a tenant's governance facts (holds, policies, settings, data-subject requests). */
export const governanceStreamId = (tenantId: string) => `governance-${tenantId}`;

export const SUBJECT_SCOPES = ["user", "session", "key"] as const;
export type SubjectScope = (typeof SUBJECT_SCOPES)[number];
export type SubjectRequestKind = "export" | "erase";
export type SubjectRequestStatus = "awaiting_approval" | "running" | "done" | "failed";

/**
 * The parts every request waits for, one per service holding subject data: agent sessions and
 * messages, ingestion documents, audit entries, metering usage.
 */
export const SUBJECT_PARTS = ["sessions", "documents", "audit", "usage"] as const;
export type SubjectPart = (typeof SUBJECT_PARTS)[number];

export interface Subject {
  scope: SubjectScope;
  id: string;
  /**
   * The principal ids that act as the subject (the event metadata's and the audit trail's
   * actor): for a user, its access token (`user:<id>`), its sign-in sessions (`session:<id>`)
   * and every API key it owns (`api_keys.owner_user_id`), resolved by auth when the request is
   * made. Read them with {@link subjectActors}.
   */
  actors?: readonly string[];
}

/** The principal ids acting as the subject: a key itself; a user's token, sign-in sessions and owned keys; none for a session. */
export function subjectActors(subject: Subject): string[] {
  if (subject.scope === "session") return [];
  if (subject.scope === "key") return [subject.id];
  return [...new Set([`user:${subject.id}`, ...(subject.actors ?? [])])].sort();
}

export interface SubjectRequest {
  requestId: string;
  tenantId: string;
  kind: SubjectRequestKind;
  subject: Subject;
  status: SubjectRequestStatus;
  requestedBy: string;
  approvedBy: string;
  approvalRequired: boolean;
  error: string;
  /**
   * Per part: items exported, or removed/kept for an erase, and why something was kept. A
   * failed request also lists the part(s) that failed, with their last error and attempts.
   */
  summary: Record<string, { items: number; removed?: number; kept?: number; note?: string; error?: string; attempts?: number }>;
  createdAt: Date;
  finishedAt: Date | null;
}

/** What a service's part found or did for one request. */
export interface PartResult {
  /** Export: the subject's data in this part (JSON-serializable). */
  items?: unknown[];
  /** Erase: how many items were removed and how many kept (and why). */
  removed?: number;
  kept?: number;
  note?: string;
}

/** A service's contribution: how to find (export) and erase the subject's data in its own tables. */
export interface SubjectDataContributor {
  part: SubjectPart;
  export(q: Queryable, tenantId: string, subject: Subject): Promise<unknown[]>;
  erase(db: Database, tenantId: string, subject: Subject): Promise<{ removed: number; kept: number; note?: string }>;
}

interface RequestRow {
  request_id: string;
  tenant_id: string;
  kind: SubjectRequestKind;
  scope: SubjectScope;
  subject_id: string;
  subject_actors: string[] | null;
  status: SubjectRequestStatus;
  requested_by: string;
  requested_by_user: string;
  approved_by: string;
  approval_required: boolean;
  error: string;
  summary: SubjectRequest["summary"];
  created_at: Date;
  finished_at: Date | null;
}

const toRequest = (r: RequestRow): SubjectRequest => ({
  requestId: r.request_id,
  tenantId: r.tenant_id,
  kind: r.kind,
  subject: { scope: r.scope, id: r.subject_id, ...(r.subject_actors?.length ? { actors: r.subject_actors } : {}) },
  status: r.status,
  requestedBy: r.requested_by,
  approvedBy: r.approved_by,
  approvalRequired: r.approval_required,
  error: r.error,
  summary: r.summary ?? {},
  createdAt: r.created_at,
  finishedAt: r.finished_at,
});

const REQUEST_COLUMNS = `request_id, tenant_id, kind, scope, subject_id, subject_actors, status, requested_by, requested_by_user, approved_by,
  approval_required, error, summary, created_at, finished_at`;

/** The tenant's data-governance settings. */
export interface GovernanceSettings {
  tenantId: string;
  /** An erase request waits for a second admin's approval. */
  eraseRequiresApproval: boolean;
}

export async function getGovernanceSettings(q: Queryable, tenantId: string): Promise<GovernanceSettings> {
  const { rows } = await q.query<{ erase_requires_approval: boolean }>(
    "SELECT erase_requires_approval FROM platform.governance_settings WHERE tenant_id = $1",
    [tenantId],
  );
  return { tenantId, eraseRequiresApproval: rows[0]?.erase_requires_approval ?? false };
}

export async function setGovernanceSettings(q: Queryable, s: GovernanceSettings): Promise<GovernanceSettings> {
  await q.query(
    `INSERT INTO platform.governance_settings (tenant_id, erase_requires_approval) VALUES ($1, $2)
     ON CONFLICT (tenant_id) DO UPDATE SET erase_requires_approval = EXCLUDED.erase_requires_approval, updated_at = now()`,
    [s.tenantId, s.eraseRequiresApproval],
  );
  return s;
}

/** Who asks or approves: the API key id, and the person behind it when there is one. */
export interface Requester {
  keyId: string;
  userId?: string | undefined;
}

/**
 * Opens a request. An erase is refused at once (LEGAL_HOLD_ACTIVE) when a hold covers the
 * subject or the tenant; it waits for approval when the tenant's settings require it. An
 * export is refused at once (FAILED_PRECONDITION KEYRING_NOT_CONFIGURED) without a master key:
 * its parts and archive are stored sealed and the archive is signed by the keyring.
 */
export async function createSubjectRequest(
  tx: Tx,
  r: { tenantId: string; kind: SubjectRequestKind; subject: Subject; by: Requester; keyring: Pick<Keyring, "configured"> },
): Promise<SubjectRequest> {
  if (!SUBJECT_SCOPES.includes(r.subject.scope))
    throw domainError("INVALID_ARGUMENT", `the subject must be a ${SUBJECT_SCOPES.join(", ")}`, { scope: String(r.subject.scope) });
  if (!r.subject.id.trim()) throw domainError("INVALID_ARGUMENT", "the subject id is required", { field: "subject_id" });
  if (r.kind === "export" && !r.keyring.configured)
    throw domainError(
      "KEYRING_NOT_CONFIGURED",
      "a data-subject export needs a master key (its archive is stored sealed and signed by the keyring): set NEXUS_MASTER_KEYS or NEXUS_MASTER_KEY_FILE",
      { kind: "export" },
    );
  let approvalRequired = false;
  if (r.kind === "erase") {
    await assertNoLegalHold(tx, r.tenantId, [r.subject], `erase the data of ${r.subject.scope} ${r.subject.id}`);
    approvalRequired = (await getGovernanceSettings(tx, r.tenantId)).eraseRequiresApproval;
  }
  const { rows } = await tx.query<RequestRow>(
    `INSERT INTO platform.subject_requests (request_id, tenant_id, kind, scope, subject_id, status, requested_by, requested_by_user,
       approval_required, parts_expected, subject_actors)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING ${REQUEST_COLUMNS}`,
    [
      randomUUID(),
      r.tenantId,
      r.kind,
      r.subject.scope,
      r.subject.id,
      approvalRequired ? "awaiting_approval" : "running",
      r.by.keyId,
      r.by.userId ?? "",
      approvalRequired,
      [...SUBJECT_PARTS],
      r.subject.scope === "user" ? subjectActors(r.subject) : [],
    ],
  );
  return toRequest(rows[0] as RequestRow);
}

/** The request, locked for the rest of the transaction; NOT_FOUND when the tenant has none with that id. */
async function lockRequest(tx: Tx, tenantId: string, requestId: string): Promise<RequestRow> {
  const { rows } = await tx.query<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM platform.subject_requests WHERE tenant_id = $1 AND request_id = $2 FOR UPDATE`,
    [tenantId, requestId],
  );
  if (!rows[0]) throw domainError("NOT_FOUND", `no data-subject request ${requestId}`, { request_id: requestId });
  return rows[0];
}

/**
 * Approves an erase waiting for approval. The requester cannot approve their own request
 * (PERMISSION_DENIED SELF_APPROVAL_FORBIDDEN) — not with the same key, nor as the same person
 * with another key; a hold placed since the request refuses it (LEGAL_HOLD_ACTIVE).
 */
export async function approveSubjectRequest(tx: Tx, tenantId: string, requestId: string, by: Requester): Promise<SubjectRequest> {
  const row = await lockRequest(tx, tenantId, requestId);
  if (row.status !== "awaiting_approval")
    throw domainError("FAILED_PRECONDITION", `request ${requestId} is ${row.status}, not awaiting approval`, {
      request_id: requestId,
      status: row.status,
    });
  if (row.requested_by === by.keyId || (row.requested_by_user !== "" && row.requested_by_user === by.userId))
    throw domainError(
      "SELF_APPROVAL_FORBIDDEN",
      `request ${requestId} must be approved by a second admin: the requester cannot approve their own erase request`,
      { request_id: requestId, requested_by: row.requested_by },
    );
  await assertNoLegalHold(tx, tenantId, [{ scope: row.scope, id: row.subject_id }], `erase the data of ${row.scope} ${row.subject_id}`);
  const updated = await tx.query<RequestRow>(
    `UPDATE platform.subject_requests SET status = 'running', approved_by = $3, updated_at = now()
     WHERE tenant_id = $1 AND request_id = $2 RETURNING ${REQUEST_COLUMNS}`,
    [tenantId, requestId, by.keyId],
  );
  return toRequest(updated.rows[0] as RequestRow);
}

export async function getSubjectRequest(q: Queryable, tenantId: string, requestId: string): Promise<SubjectRequest> {
  const { rows } = await q.query<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM platform.subject_requests WHERE tenant_id = $1 AND request_id = $2`,
    [tenantId, requestId],
  );
  if (!rows[0]) throw domainError("NOT_FOUND", `no data-subject request ${requestId}`, { request_id: requestId });
  return toRequest(rows[0]);
}

export async function listSubjectRequests(q: Queryable, tenantId: string, limit = 50): Promise<SubjectRequest[]> {
  const { rows } = await q.query<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM platform.subject_requests WHERE tenant_id = $1 ORDER BY created_at DESC, request_id LIMIT $2`,
    [tenantId, limit],
  );
  return rows.map(toRequest);
}

/**
 * Restarts a failed request: the parts that failed run again (with a fresh count of attempts);
 * the parts already stored are kept. FAILED_PRECONDITION for a request that has not failed.
 */
export async function retrySubjectRequest(tx: Tx, tenantId: string, requestId: string): Promise<SubjectRequest> {
  const row = await lockRequest(tx, tenantId, requestId);
  if (row.status !== "failed")
    throw domainError("FAILED_PRECONDITION", `request ${requestId} is ${row.status}: only a failed request can be retried`, {
      request_id: requestId,
      status: row.status,
    });
  if (row.kind === "erase")
    await assertNoLegalHold(tx, tenantId, [{ scope: row.scope, id: row.subject_id }], `erase the data of ${row.scope} ${row.subject_id}`);
  await tx.query("DELETE FROM platform.subject_request_attempts WHERE request_id = $1", [requestId]);
  const updated = await tx.query<RequestRow>(
    `UPDATE platform.subject_requests SET status = 'running', error = '', summary = '{}'::jsonb, finished_at = NULL, updated_at = now()
     WHERE request_id = $1 RETURNING ${REQUEST_COLUMNS}`,
    [requestId],
  );
  return toRequest(updated.rows[0] as RequestRow);
}

// ---- the signed archive ----

export const SUBJECT_ARCHIVE_FORMAT = "nexus-subject-export/1";
const SIGNATURE_PURPOSE = "signatures";

/** The downloadable file: the content, its SHA-256 and the keyring's signature of that digest. */
export interface SubjectArchive {
  format: typeof SUBJECT_ARCHIVE_FORMAT;
  tenantId: string;
  requestId: string;
  /** SHA-256 (hex) of `JSON.stringify(content)`. */
  sha256: string;
  /** The digest sealed (AES-256-GCM) under the tenant's `signatures` data key: only the keyring can make one that opens to it. */
  signature: string;
  content: {
    subject: Subject;
    exportedAt: string;
    parts: Record<string, unknown[]>;
  };
}

const digestOf = (content: SubjectArchive["content"]) => createHash("sha256").update(JSON.stringify(content)).digest("hex");

/**
 * Verifies an archive: the digest matches the content and the signature opens (with the
 * tenant's key) to that digest. Returns why not, or "" when it verifies.
 */
export async function verifySubjectArchive(keyring: Keyring, archive: SubjectArchive): Promise<string> {
  if (archive?.format !== SUBJECT_ARCHIVE_FORMAT || typeof archive.signature !== "string" || !archive.content)
    return `not a ${SUBJECT_ARCHIVE_FORMAT} archive`;
  const digest = digestOf(archive.content);
  if (digest !== archive.sha256) return "the content does not match the archive's SHA-256: it was altered";
  let signed: string;
  try {
    signed = await keyring.openText({ tenantId: archive.tenantId, purpose: SIGNATURE_PURPOSE }, archive.signature);
  } catch (err) {
    return `the signature does not open with the tenant's key: ${(err as Error).message}`;
  }
  return signed === `${archive.requestId}\n${digest}` ? "" : "the signature was made for another archive";
}

/** The export's archive (FAILED_PRECONDITION while not done, or for an erase). */
export async function getSubjectArchive(q: Queryable, keyring: Keyring, tenantId: string, requestId: string): Promise<Buffer> {
  const request = await getSubjectRequest(q, tenantId, requestId);
  if (request.kind !== "export")
    throw domainError("FAILED_PRECONDITION", `request ${requestId} is an erase: it has no archive`, { request_id: requestId });
  if (request.status !== "done")
    throw domainError("FAILED_PRECONDITION", `request ${requestId} is ${request.status}: its archive is not ready`, {
      request_id: requestId,
      status: request.status,
    });
  const { rows } = await q.query<{ archive: string }>(
    "SELECT archive FROM platform.subject_requests WHERE tenant_id = $1 AND request_id = $2",
    [tenantId, requestId],
  );
  // Stored sealed (the archive holds the subject's content in the clear once opened).
  return Buffer.from(await keyring.openText({ tenantId, purpose: "exports" }, rows[0]?.archive ?? ""), "utf8");
}

// ---- the parts ----

/** How often a failing part is tried, and how long it waits between tries (doubling from `baseMs` up to `maxMs`). */
export interface PartRetryPolicy {
  maxAttempts: number;
  baseMs: number;
  maxMs: number;
}

/** Six tries over about five minutes (10 s, 20 s, 40 s, 80 s, 160 s apart), then the request fails. */
export const DEFAULT_PART_RETRY: PartRetryPolicy = { maxAttempts: 6, baseMs: 10_000, maxMs: 600_000 };

/** The wait after the `attempt`-th failure. */
export const partRetryDelayMs = (p: PartRetryPolicy, attempt: number) => Math.min(p.maxMs, p.baseMs * 2 ** Math.max(0, attempt - 1));

/**
 * Does this service's part of every running request that lacks it: exports (the items,
 * sealed, into `platform.subject_request_parts`) or erases, then — when it stored the last
 * expected part — assembles the signed archive or the erase summary and closes the job. A
 * part that fails is tried again after a backoff (`platform.subject_request_attempts`); after
 * `retry.maxAttempts` failures the request is FAILED, with each failed part's error in its
 * summary ({@link retrySubjectRequest} restarts it).
 */
export async function runSubjectRequests(
  db: Database,
  keyring: Keyring,
  contributor: SubjectDataContributor,
  retry: PartRetryPolicy = DEFAULT_PART_RETRY,
): Promise<number> {
  const { rows } = await db.query<RequestRow>(
    `SELECT ${REQUEST_COLUMNS} FROM platform.subject_requests r
     WHERE status = 'running' AND $1 = ANY(parts_expected)
       AND NOT EXISTS (SELECT 1 FROM platform.subject_request_parts p WHERE p.request_id = r.request_id AND p.part = $1)
       AND NOT EXISTS (SELECT 1 FROM platform.subject_request_attempts a
                       WHERE a.request_id = r.request_id AND a.part = $1 AND a.next_attempt_at > now())
     ORDER BY created_at LIMIT 20`,
    [contributor.part],
  );
  let done = 0;
  for (const row of rows) {
    const req = toRequest(row);
    // One replica at a time does a request's part (an erase must not run twice at once).
    const lease = `subject:${req.requestId}:${contributor.part}`;
    if (!(await acquireLease(db, lease, 600_000))) continue;
    try {
      done += await runPart(db, keyring, contributor, req, retry);
    } finally {
      await releaseLease(db, lease);
    }
  }
  return done;
}

/** What a stored part says in the request's summary. */
const partSummary = (
  kind: SubjectRequestKind,
  p: { item_count: number; removed: number; kept: number; note: string },
): SubjectRequest["summary"][string] =>
  kind === "export"
    ? { items: p.item_count }
    : { items: p.removed + p.kept, removed: p.removed, kept: p.kept, ...(p.note ? { note: p.note } : {}) };

/**
 * Counts a failed attempt of a part: the request shows the error and waits for the next try,
 * or — after the last allowed attempt — is FAILED with every stored part and the failed one.
 */
async function partFailed(db: Database, req: SubjectRequest, part: string, err: unknown, retry: PartRetryPolicy): Promise<void> {
  const message = ((err as Error)?.message ?? String(err)).slice(0, 2000);
  await db.transaction(async (tx) => {
    const locked = await tx.query<{ status: string }>("SELECT status FROM platform.subject_requests WHERE request_id = $1 FOR UPDATE", [
      req.requestId,
    ]);
    if (locked.rows[0]?.status !== "running") return;
    const { rows } = await tx.query<{ attempts: number }>(
      `INSERT INTO platform.subject_request_attempts (request_id, part, attempts, last_error) VALUES ($1, $2, 1, $3)
       ON CONFLICT (request_id, part) DO UPDATE SET attempts = platform.subject_request_attempts.attempts + 1, last_error = EXCLUDED.last_error
       RETURNING attempts`,
      [req.requestId, part, message],
    );
    const attempts = rows[0]?.attempts ?? 1;
    if (attempts < retry.maxAttempts) {
      const waitMs = partRetryDelayMs(retry, attempts);
      await tx.query(
        `UPDATE platform.subject_request_attempts SET next_attempt_at = now() + make_interval(secs => $3::double precision / 1000)
         WHERE request_id = $1 AND part = $2`,
        [req.requestId, part, waitMs],
      );
      await tx.query("UPDATE platform.subject_requests SET error = $2, updated_at = now() WHERE request_id = $1", [
        req.requestId,
        `${part}: ${message} (attempt ${attempts} of ${retry.maxAttempts}; next in ${Math.round(waitMs / 1000)} s)`,
      ]);
      return;
    }
    // The last attempt failed: the request fails, showing what was done and what failed.
    const summary: SubjectRequest["summary"] = {};
    const { rows: parts } = await tx.query<{ part: string; item_count: number; removed: number; kept: number; note: string }>(
      "SELECT part, item_count, removed, kept, note FROM platform.subject_request_parts WHERE request_id = $1 ORDER BY part",
      [req.requestId],
    );
    for (const p of parts) summary[p.part] = partSummary(req.kind, p);
    const { rows: failed } = await tx.query<{ part: string; attempts: number; last_error: string }>(
      "SELECT part, attempts, last_error FROM platform.subject_request_attempts WHERE request_id = $1 AND attempts >= $2 ORDER BY part",
      [req.requestId, retry.maxAttempts],
    );
    for (const f of failed) summary[f.part] = { items: 0, error: f.last_error, attempts: f.attempts };
    await tx.query(
      `UPDATE platform.subject_requests SET status = 'failed', summary = $2::jsonb, error = $3, finished_at = now(), updated_at = now()
       WHERE request_id = $1`,
      [req.requestId, JSON.stringify(summary), `${part}: ${message} (failed ${attempts} times; RetryDataSubjectRequest restarts it)`],
    );
    // The failure is in the tenant's audit trail (governance.subject_request.failed).
    await recordFacts(
      tx,
      governanceStreamId(req.tenantId),
      [
        eventOf(DataSubjectRequestFailedSchema, {
          tenantId: req.tenantId,
          requestId: req.requestId,
          kind: req.kind,
          part,
          error: message,
          attempts,
        }),
      ],
      { metadata: { tenantId: req.tenantId, actor: "system" } },
    );
  });
}

async function runPart(
  db: Database,
  keyring: Keyring,
  contributor: SubjectDataContributor,
  req: SubjectRequest,
  retry: PartRetryPolicy,
): Promise<number> {
  let done = 0;
  let result: PartResult;
  let sealed = "";
  try {
    result =
      req.kind === "export"
        ? { items: await contributor.export(db, req.tenantId, req.subject) }
        : await contributor.erase(db, req.tenantId, req.subject);
    if (req.kind === "export")
      sealed = await keyring.sealText({ tenantId: req.tenantId, purpose: "exports" }, JSON.stringify(result.items));
  } catch (err) {
    await partFailed(db, req, contributor.part, err, retry);
    return 0;
  }
  const items = result.items ?? [];
  await db.transaction(async (tx) => {
    // The request row lock orders the parts: exactly one of them sees all parts stored.
    const locked = await tx.query<{ status: string; parts_expected: string[] }>(
      "SELECT status, parts_expected FROM platform.subject_requests WHERE request_id = $1 FOR UPDATE",
      [req.requestId],
    );
    if (locked.rows[0]?.status !== "running") return;
    const inserted = await tx.query(
      `INSERT INTO platform.subject_request_parts (request_id, part, items, item_count, removed, kept, note) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT DO NOTHING`,
      [req.requestId, contributor.part, sealed, items.length, result.removed ?? 0, result.kept ?? 0, result.note ?? ""],
    );
    if (inserted.rowCount === 0) return;
    done++;
    const { rows: parts } = await tx.query<{
      part: string;
      items: string;
      item_count: number;
      removed: number;
      kept: number;
      note: string;
    }>("SELECT part, items, item_count, removed, kept, note FROM platform.subject_request_parts WHERE request_id = $1 ORDER BY part", [
      req.requestId,
    ]);
    if (!(locked.rows[0].parts_expected ?? []).every((p) => parts.some((x) => x.part === p))) return;
    const summary: SubjectRequest["summary"] = {};
    for (const p of parts) summary[p.part] = partSummary(req.kind, p);
    let archive: string | null = null;
    if (req.kind === "export") {
      const k = keyring.using ? keyring.using(tx) : keyring;
      const content: SubjectArchive["content"] = { subject: req.subject, exportedAt: new Date().toISOString(), parts: {} };
      for (const p of parts) content.parts[p.part] = JSON.parse(await k.openText({ tenantId: req.tenantId, purpose: "exports" }, p.items));
      const sha256 = digestOf(content);
      const signature = await k.sealText({ tenantId: req.tenantId, purpose: SIGNATURE_PURPOSE }, `${req.requestId}\n${sha256}`);
      const file: SubjectArchive = {
        format: SUBJECT_ARCHIVE_FORMAT,
        tenantId: req.tenantId,
        requestId: req.requestId,
        sha256,
        signature,
        content,
      };
      archive = await k.sealText({ tenantId: req.tenantId, purpose: "exports" }, JSON.stringify(file, null, 2));
      // The parts were copied into the archive: drop their copies.
      await tx.query("UPDATE platform.subject_request_parts SET items = '' WHERE request_id = $1", [req.requestId]);
    }
    await tx.query(
      `UPDATE platform.subject_requests SET status = 'done', summary = $2::jsonb, archive = $3, error = '', finished_at = now(), updated_at = now()
         WHERE request_id = $1`,
      [req.requestId, JSON.stringify(summary), archive],
    );
    // The completion is in the tenant's audit trail (governance.subject_request.completed).
    const total = (f: (s: SubjectRequest["summary"][string]) => number) => Object.values(summary).reduce((n, s) => n + f(s), 0);
    await recordFacts(
      tx,
      governanceStreamId(req.tenantId),
      [
        eventOf(DataSubjectRequestCompletedSchema, {
          tenantId: req.tenantId,
          requestId: req.requestId,
          kind: req.kind,
          scope: req.subject.scope,
          subjectId: req.subject.id,
          items: req.kind === "export" ? total((s) => s.items) : total((s) => s.removed ?? 0),
          kept: total((s) => s.kept ?? 0),
        }),
      ],
      { metadata: { tenantId: req.tenantId, actor: "system" } },
    );
  });
  return done;
}

/** The periodic task a service adds to its parts to contribute to data-subject requests. */
export function subjectRequestTask(o: {
  db: Database;
  keyring: Keyring;
  contributor: SubjectDataContributor;
  intervalMs: number;
  logger: Logger;
}): PeriodicTask {
  return {
    name: `subject requests (${o.contributor.part})`,
    intervalMs: o.intervalMs,
    async run() {
      const n = await runSubjectRequests(o.db, o.keyring, o.contributor);
      if (n > 0) o.logger.info({ part: o.contributor.part, requests: n }, "data-subject request parts done");
      return n;
    },
  };
}
