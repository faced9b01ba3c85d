import { DocumentAccessChangedSchema, DocumentAccessDeniedSchema } from "../../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { type Aggregate, executeCommand, recordFacts } from "../../../kernel/commands/index.js";
import type { TenantPrincipal } from "../../../kernel/context.js";
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

/** Who is reading: what the search filter compares grants with. */
export interface Reader {
  userId: string;
  groups: readonly string[];
  /** The caller's role and every weaker one (role grants admit "at least"). */
  roles: readonly string[];
}

/**
 * The SQL condition (on chunk alias `c`, tenant in `$1`) that a chunk's document is readable by
 * `reader`: unrestricted, or an unexpired grant admits them. `param` adds a parameter.
 */
export function readableSql(reader: Reader, param: (v: unknown) => string): string {
  return `c.document_id NOT IN (${hiddenDocumentsSql(reader, param)})`;
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
        AND NOT EXISTS (
          SELECT 1 FROM retrieval.document_grants g
          WHERE g.tenant_id = $1 AND g.document_id = a.document_id AND (g.expires_at IS NULL OR g.expires_at > now())
            AND (g.grantee_kind = 'tenant'
              OR (g.grantee_kind = 'user' AND g.grantee = ${user} AND ${user} <> '')
              OR (g.grantee_kind = 'group' AND g.grantee = ANY(${groups}::text[]))
              OR (g.grantee_kind = 'role' AND g.grantee = ANY(${roles}::text[]))))`;
}

/** The rule recorded when a restricted document refuses a reader. */
export const RESTRICTED_RULE = "restricted: no unexpired grant admits the caller";

/** Whether `reader` may read the document (the same condition as the search filter). */
export async function mayRead(q: Queryable, key: DocumentKey, reader: Reader): Promise<boolean> {
  const params: unknown[] = [key.tenantId, key.documentId];
  const param = (v: unknown): string => `$${params.push(v)}`;
  const { rows } = await q.query<{ ok: boolean }>(
    `SELECT ${readableSql(reader, param)} AS ok FROM (SELECT $2::text AS document_id) c`,
    params,
  );
  return rows[0]?.ok === true;
}

/** Records a refusal by a document's access list, with the deciding rule (audited as documents.access.denied). */
export async function recordAccessDenied(
  db: Database,
  key: DocumentKey,
  caller: { keyId: string; userId: string; procedure: string },
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
          rule: RESTRICTED_RULE,
        }),
      ],
      { metadata: { tenantId: key.tenantId, actor: caller.keyId } },
    ),
  );
}

/** The caller as a reader of documents. */
export function readerOf(principal: TenantPrincipal): Reader {
  return { userId: principal.userId ?? "", groups: principal.groups ?? [], roles: rolesAtOrBelow(principal.role) };
}

/** Sets the tenant's document access settings. */
export async function saveAccessSettings(db: Database, tenantId: string, adminsBypass: boolean): Promise<void> {
  await db.query(
    `INSERT INTO retrieval.document_access_settings (tenant_id, admins_bypass) VALUES ($1, $2)
     ON CONFLICT (tenant_id) DO UPDATE SET admins_bypass = EXCLUDED.admins_bypass`,
    [tenantId, adminsBypass],
  );
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
