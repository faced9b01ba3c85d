import {
  DocumentAccessChangedSchema,
  DocumentAccessDeniedSchema,
  DocumentAccessSettingsChangedSchema,
} from "../../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { type Aggregate, executeCommand, recordFacts } from "../../../kernel/commands/index.js";
import type { TenantPrincipal, TenantRole } from "../../../kernel/context.js";
import type { Database, Queryable } from "../../../kernel/db/ports.js";
import { eventOf } from "../../../kernel/events/protobuf-event.js";
import { registerEventTopics } from "../../../kernel/events/topics.js";
import {
  type DocumentAccess,
  type DocumentAccessCommand,
  type DocumentAccessEvent,
  decideDocumentAccess,
  evolveDocumentAccess,
  type GranteeKind,
  grantText,
  rolesAtOrBelow,
} from "../document-access.js";
import {
  type AccessDecision,
  compilePolicies,
  decideAccess,
  type PolicyAction,
  type PolicyPrincipal,
  type PolicyResource,
  type StoredPolicy,
} from "../policy-engine.js";
import { type AccessContext, accessCache, loadAccessContext } from "./postgres-policies.js";

registerEventTopics({
  [DocumentAccessChangedSchema.typeName]: "retrieval.document_access_changed",
  [DocumentAccessDeniedSchema.typeName]: "retrieval.document_access_denied",
});

/** A document's identity. */
export interface DocumentKey {
  tenantId: string;
  documentId: string;
}

/** The document access aggregate (stream `document_access-<tenant>-<document>`). */
export type DocumentAccessAggregate = Aggregate<DocumentAccess, DocumentAccessEvent, DocumentAccessCommand, DocumentKey>;

/** Reads a document's access list (`lock` for the command helper). */
export async function readDocumentAccess(
  q: Queryable,
  key: DocumentKey,
  lock = false,
): Promise<{ access: DocumentAccess | undefined; version: number }> {
  const { rows } = await q.query<{ restricted: boolean; version: number; owner_user_id: string }>(
    `SELECT restricted, version, owner_user_id FROM retrieval.document_access WHERE tenant_id = $1 AND document_id = $2${lock ? " FOR UPDATE" : ""}`,
    [key.tenantId, key.documentId],
  );
  const row = rows[0];
  if (!row) return { access: undefined, version: 0 };
  const grants = await q.query<{ grantee_kind: GranteeKind; grantee: string; expires_at: Date | string | null }>(
    "SELECT grantee_kind, grantee, expires_at FROM retrieval.document_grants WHERE tenant_id = $1 AND document_id = $2 ORDER BY grantee_kind, grantee",
    [key.tenantId, key.documentId],
  );
  return {
    access: {
      ...key,
      restricted: row.restricted,
      ownerUserId: row.owner_user_id,
      grants: grants.rows.map((g) => ({
        kind: g.grantee_kind,
        grantee: g.grantee,
        expiresAt: g.expires_at === null ? undefined : new Date(g.expires_at),
      })),
    },
    version: row.version,
  };
}

/** The aggregate over `retrieval.document_access` and `retrieval.document_grants`. */
export function documentAccessAggregate(): DocumentAccessAggregate {
  return {
    streamId: (k) => `document_access-${k.tenantId}-${k.documentId}`,
    async load(tx, key) {
      const { access, version } = await readDocumentAccess(tx, key, true);
      return { state: access, version };
    },
    decide: (command, state, key) => decideDocumentAccess(command, state, key),
    evolve: (state, event) => evolveDocumentAccess(state, event),
    async save(tx, key, state, _expected, version) {
      await tx.query(
        `INSERT INTO retrieval.document_access (tenant_id, document_id, restricted, version, owner_user_id) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id, document_id) DO UPDATE SET restricted = EXCLUDED.restricted, version = EXCLUDED.version,
           owner_user_id = EXCLUDED.owner_user_id`,
        [key.tenantId, key.documentId, state.restricted, version, state.ownerUserId],
      );
      await tx.query("DELETE FROM retrieval.document_grants WHERE tenant_id = $1 AND document_id = $2", [key.tenantId, key.documentId]);
      for (const g of state.grants) {
        await tx.query(
          "INSERT INTO retrieval.document_grants (tenant_id, document_id, grantee_kind, grantee, expires_at) VALUES ($1, $2, $3, $4, $5::timestamptz)",
          [key.tenantId, key.documentId, g.kind, g.grantee, g.expiresAt ?? null],
        );
      }
    },
    toEvent: (event, _state, key) =>
      eventOf(
        DocumentAccessChangedSchema,
        {
          tenantId: key.tenantId,
          documentId: key.documentId,
          restricted: event.access.restricted,
          grants: event.access.grants.map(grantText),
          ownerUserId: event.access.ownerUserId,
        },
        { metadata: { tenantId: key.tenantId } },
      ),
  };
}

/** Who is reading: what the search filter compares grants with, and what policies see. */
export interface Reader {
  userId: string;
  /** The principal's key id (`ApiKey::"<id>"` to policies when there is no user). */
  keyId: string;
  /** The caller's role. */
  role: TenantRole;
  groups: readonly string[];
  /** The caller's role and every weaker one (role grants admit "at least"). */
  roles: readonly string[];
}

/** A reader, the actions they perform and the tenant's policies: everything a filter needs. */
export interface AccessFilter {
  reader: Reader;
  actions: readonly PolicyAction[];
  context: AccessContext;
}

/** The SQL of an access filter (on a row alias `c` with document_id, corpus_id, metadata; tenant `$1`). */
export interface AccessSql {
  /** CTEs the condition reads (`hidden`, and `granted` under default deny). */
  ctes: string[];
  /** The row is visible (as far as SQL can tell: residual policies are decided after). */
  condition: string;
  /** The deciding rule of a row the condition hides (NULL for a visible row). */
  rule: string;
  /** Whether a grant or a compiled permit allows the row (what default deny needs). */
  permitted: string;
  /** Policies decided by Cedar per candidate document. */
  residual: StoredPolicy[];
}

/** The SQL of `filter`; `param` adds a parameter (staged: see {@link stagedParams}). */
export function accessSql(filter: AccessFilter, param: (v: unknown) => string): AccessSql {
  const { reader, context } = filter;
  const compiled = compilePolicies(context.policies, principalOf(reader), filter.actions, param);
  const ctes = [`hidden AS MATERIALIZED (${hiddenDocumentsSql(reader, param)})`];
  const conditions = ["c.document_id NOT IN (SELECT document_id FROM hidden)"];
  const rules = ["WHEN c.document_id IN (SELECT document_id FROM hidden) THEN 'acl'"];
  for (const f of compiled.forbids) {
    conditions.push(`NOT ${f.sql}`);
    // A literal, not a parameter: statements that do not read `rule` must not carry unused parameters.
    rules.push(`WHEN ${f.sql} THEN '${`policy:${f.policyId}`.replaceAll("'", "''")}'`);
  }
  let permitted = "true";
  if (context.defaultDeny) {
    ctes.push(`granted AS MATERIALIZED (${grantedDocumentsSql(reader, param)})`);
    permitted = ["c.document_id IN (SELECT document_id FROM granted)", ...compiled.permits.map((p) => p.sql)].join(" OR ");
    // A residual permit may still allow the row: Cedar decides it after the statement.
    if (!compiled.residualPermit) {
      conditions.push(`(${permitted})`);
      rules.push(`WHEN NOT (${permitted}) THEN 'default deny'`);
    }
  }
  return {
    ctes,
    condition: conditions.join(" AND "),
    rule: `(CASE ${rules.join(" ")} END)`,
    permitted: `(${permitted})`,
    residual: compiled.residual,
  };
}

/**
 * Parameters for pieces of SQL a statement may or may not use (the access filter's CTEs, rule,
 * `permitted`): `param` stages a value behind a placeholder; `bind` turns the placeholders the
 * final statement holds into real parameters, so it never carries a parameter it does not read
 * (PostgreSQL cannot type those).
 */
export function stagedParams(param: (v: unknown) => string): { param: (v: unknown) => string; bind: (sql: string) => string } {
  const staged: unknown[] = [];
  const bound = new Map<number, string>();
  return {
    param: (v) => `@@nexus_s${staged.push(v) - 1}@@`,
    bind: (sql) =>
      sql.replace(/@@nexus_s(\d+)@@/g, (_m, i: string) => {
        const n = Number(i);
        if (!bound.has(n)) bound.set(n, param(staged[n]));
        return bound.get(n)!;
      }),
  };
}

/**
 * The SQL condition (on alias `c`, tenant in `$1`) that a row's document is readable by the
 * filter's reader (with the CTEs inlined as subqueries, for statements without a WITH).
 */
export function readableSql(filter: AccessFilter, param: (v: unknown) => string): string {
  const staged = stagedParams(param);
  const a = accessSql(filter, staged.param);
  let condition = a.condition;
  for (const cte of a.ctes) {
    const name = cte.slice(0, cte.indexOf(" "));
    const body = cte.slice(cte.indexOf("(") + 1, -1);
    condition = condition.replaceAll(`SELECT document_id FROM ${name}`, body);
  }
  return staged.bind(condition);
}

/** The documents of tenant `$1` a grant of a restricted document, or the owner grant, admits `reader` to. */
function grantedDocumentsSql(reader: Reader, param: (v: unknown) => string): string {
  const user = param(reader.userId);
  const groups = param([...reader.groups]);
  const roles = param([...reader.roles]);
  return `SELECT a.document_id FROM retrieval.document_access a
      WHERE a.tenant_id = $1 AND ((a.owner_user_id <> '' AND a.owner_user_id = ${user})
        OR (a.restricted AND ${grantAdmitsSql(user, groups, roles)}))`;
}

/** Whether some of the filter's policies are residual (decided per document after the SQL). */
export function hasResidual(filter: AccessFilter): boolean {
  return compilePolicies(filter.context.policies, principalOf(filter.reader), filter.actions, () => "NULL").residual.length > 0;
}

/** The reader as policies see them. */
export function principalOf(reader: Reader): PolicyPrincipal {
  return { userId: reader.userId, keyId: reader.keyId, role: reader.role, groups: reader.groups };
}

/**
 * The documents of tenant `$1` that `reader` may not read: restricted, not theirs, and no
 * unexpired grant admits them (none when admins bypass and the reader is one). Searches compute
 * it once per query (a small set: restricted documents only) rather than once per chunk.
 */
export function hiddenDocumentsSql(reader: Reader, param: (v: unknown) => string): string {
  const user = param(reader.userId);
  const groups = param([...reader.groups]);
  const roles = param([...reader.roles]);
  // Admins and owners pass when the tenant's setting says so (off unless set).
  const bypass = reader.roles.includes("admin")
    ? ` AND NOT EXISTS (SELECT 1 FROM retrieval.document_access_settings s WHERE s.tenant_id = $1 AND s.admins_bypass)`
    : "";
  return `SELECT a.document_id FROM retrieval.document_access a
      WHERE a.tenant_id = $1 AND a.restricted${bypass}
        AND (a.owner_user_id = '' OR a.owner_user_id <> ${user})
        AND NOT ${grantAdmitsSql(user, groups, roles)}`;
}

/** An unexpired grant of document `a` admits the reader (user, groups and roles as parameters). */
function grantAdmitsSql(user: string, groups: string, roles: string): string {
  return `EXISTS (
          SELECT 1 FROM retrieval.document_grants g
          WHERE g.tenant_id = $1 AND g.document_id = a.document_id AND (g.expires_at IS NULL OR g.expires_at > now())
            AND (g.grantee_kind = 'tenant'
              OR (g.grantee_kind = 'user' AND g.grantee = ${user} AND ${user} <> '')
              OR (g.grantee_kind = 'group' AND g.grantee = ANY(${groups}::text[]))
              OR (g.grantee_kind = 'role' AND g.grantee = ANY(${roles}::text[]))))`;
}

/** The rule recorded when a restricted document refuses a reader. */
export const RESTRICTED_RULE = "restricted: no unexpired grant admits the caller";

/** What the access list says about `reader` and one document (the ACL step of the decision order). */
async function aclOf(q: Queryable, key: DocumentKey, reader: Reader): Promise<{ allowed: boolean; explicit: boolean }> {
  const params: unknown[] = [key.tenantId, key.documentId];
  const param = (v: unknown): string => `$${params.push(v)}`;
  const { rows } = await q.query<{ ok: boolean; explicit: boolean }>(
    `SELECT $2 NOT IN (${hiddenDocumentsSql(reader, param)}) AS ok, $2 IN (${grantedDocumentsSql(reader, param)}) AS explicit`,
    params,
  );
  return { allowed: rows[0]?.ok === true, explicit: rows[0]?.explicit === true };
}

/** A document's labels (its string metadata), corpus and owner, as policies see them. */
export async function documentFacts(q: Queryable, key: DocumentKey): Promise<PolicyResource> {
  const { rows } = await q.query<{ metadata: Record<string, unknown> | null; corpus_id: string | null; owner: string | null }>(
    `SELECT d.metadata, d.corpus_id,
       (SELECT a.owner_user_id FROM retrieval.document_access a WHERE a.tenant_id = $1 AND a.document_id = $2) AS owner
     FROM (SELECT 1) one LEFT JOIN ingestion.documents d ON d.tenant_id = $1 AND d.document_id = $2`,
    [key.tenantId, key.documentId],
  );
  const row = rows[0];
  return { documentId: key.documentId, labels: labelsOf(row?.metadata), corpusId: row?.corpus_id ?? "", ownerUserId: row?.owner ?? "" };
}

/** The labels of a document: its string-valued metadata. */
export function labelsOf(metadata: Record<string, unknown> | null | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(metadata ?? {}).filter((e): e is [string, string] => typeof e[1] === "string"));
}

/**
 * The whole decision for one document (GetDocument, WatchDocument, changes, SimulatePolicy):
 * the access list, then the tenant's enabled policies (plus `extra`, for simulations) with
 * Cedar, then the default.
 */
export async function decideDocument(
  q: Queryable,
  key: DocumentKey,
  reader: Reader,
  actions: readonly PolicyAction[],
  options: { extra?: readonly StoredPolicy[]; resource?: PolicyResource } = {},
): Promise<AccessDecision> {
  const acl = options.resource ? { allowed: true, explicit: false } : await aclOf(q, key, reader);
  const context = await loadAccessContext(q, key.tenantId);
  const policies = [...context.policies, ...(options.extra ?? [])];
  if (policies.length === 0 && !context.defaultDeny) {
    return acl.allowed
      ? { allowed: true, rule: acl.explicit ? "acl: grant" : "default allow", policyIds: [], errors: [] }
      : { allowed: false, rule: `acl: ${RESTRICTED_RULE}`, policyIds: [], errors: [] };
  }
  return decideAccess({
    acl: { ...acl, rule: RESTRICTED_RULE },
    policies,
    principal: principalOf(reader),
    actions,
    resource: options.resource ?? (await documentFacts(q, key)),
    defaultDeny: context.defaultDeny,
  });
}

/** Whether `reader` may read the document (the same decision as the search filter). */
export async function mayRead(
  q: Queryable,
  key: DocumentKey,
  reader: Reader,
  actions: readonly PolicyAction[] = ["Read"],
): Promise<boolean> {
  return (await decideDocument(q, key, reader, actions)).allowed;
}

/** Records a refusal by document access, with the deciding rule (audited as documents.access.denied). */
export async function recordAccessDenied(
  db: Database,
  key: DocumentKey,
  caller: { keyId: string; userId: string; procedure: string; rule?: string },
): Promise<void> {
  await db.transaction((tx) =>
    recordFacts(
      tx,
      `document_access_denied-${key.tenantId}`,
      [
        eventOf(DocumentAccessDeniedSchema, {
          tenantId: key.tenantId,
          documentId: key.documentId,
          keyId: caller.keyId,
          userId: caller.userId,
          procedure: caller.procedure,
          rule: caller.rule ?? `acl: ${RESTRICTED_RULE}`,
        }),
      ],
      { metadata: { tenantId: key.tenantId, actor: caller.keyId } },
    ),
  );
}

/** The caller as a reader of documents. */
export function readerOf(principal: TenantPrincipal): Reader {
  return {
    userId: principal.userId ?? "",
    keyId: principal.keyId,
    role: principal.role,
    groups: principal.groups ?? [],
    roles: rolesAtOrBelow(principal.role),
  };
}

/** The caller's access filter for `actions` (reads the tenant's policies: no cache). */
export async function accessFilterOf(q: Queryable, principal: TenantPrincipal, actions: readonly PolicyAction[]): Promise<AccessFilter> {
  return { reader: readerOf(principal), actions, context: await loadAccessContext(q, principal.tenantId) };
}

/** Sets the tenant's document access settings (`defaultDeny` undefined keeps it); answers the values in force. */
export async function saveAccessSettings(
  db: Database,
  tenantId: string,
  adminsBypass: boolean,
  defaultDeny: boolean | undefined,
  actor: string,
): Promise<{ adminsBypass: boolean; defaultDeny: boolean }> {
  const saved = await db.transaction(async (tx) => {
    const { rows } = await tx.query<{ admins_bypass: boolean; default_deny: boolean }>(
      `INSERT INTO retrieval.document_access_settings (tenant_id, admins_bypass, default_deny) VALUES ($1, $2, coalesce($3::boolean, false))
       ON CONFLICT (tenant_id) DO UPDATE SET admins_bypass = EXCLUDED.admins_bypass,
         default_deny = coalesce($3::boolean, retrieval.document_access_settings.default_deny)
       RETURNING admins_bypass, default_deny`,
      [tenantId, adminsBypass, defaultDeny ?? null],
    );
    const settings = { adminsBypass: rows[0]!.admins_bypass, defaultDeny: rows[0]!.default_deny };
    // The event tells every process's access cache (and open watches) that the settings changed.
    await recordFacts(
      tx,
      `document_access_settings-${tenantId}`,
      [eventOf(DocumentAccessSettingsChangedSchema, { tenantId, ...settings })],
      {
        metadata: { tenantId, actor },
      },
    );
    return settings;
  });
  accessCache.invalidate(tenantId);
  return saved;
}

/**
 * The documents of a listing (tenant, optional corpus and statuses; at most 5,000) that `filter`
 * withholds, counted by deciding rule — what one audit record per ListDocuments call reports
 * (residual policies are counted by the caller, which decides them).
 */
export async function withheldDocumentsByRule(
  q: Queryable,
  tenantId: string,
  listing: { corpusId?: string; statuses?: readonly string[] },
  filter: AccessFilter,
): Promise<Map<string, number>> {
  const params: unknown[] = [tenantId];
  const param = (v: unknown): string => `$${params.push(v)}`;
  const staged = stagedParams(param);
  const a = accessSql(filter, staged.param);
  let where = "c.tenant_id = $1";
  if (listing.corpusId) where += ` AND c.corpus_id = ${param(listing.corpusId)}`;
  if (listing.statuses && listing.statuses.length > 0) where += ` AND c.status = ANY(${param([...listing.statuses])}::text[])`;
  const { rows } = await q.query<{ rule: string; n: number }>(
    staged.bind(`WITH ${a.ctes.join(",\n")}
     SELECT rule, count(*)::int AS n FROM (SELECT ${a.rule} AS rule FROM ingestion.documents c WHERE ${where} LIMIT 5000) d
     WHERE rule IS NOT NULL GROUP BY rule`),
    params,
  );
  return new Map(rows.map((r) => [r.rule, r.n]));
}

/** Drops a deleted document's access list (its grants cascade), in the deleting transaction. */
export async function dropDocumentAccess(q: Queryable, key: DocumentKey): Promise<void> {
  await q.query("DELETE FROM retrieval.document_access WHERE tenant_id = $1 AND document_id = $2", [key.tenantId, key.documentId]);
}

/** Records a person as the owner of a document they uploaded (once; the first uploader stays). */
export async function recordOwner(db: Database, key: DocumentKey, userId: string, actor: string): Promise<void> {
  await executeCommand(
    db,
    documentAccessAggregate(),
    key,
    { type: "RecordOwner", userId },
    { metadata: { tenantId: key.tenantId, actor } },
  );
}
