import type { Queryable } from "../../kernel/db/ports.js";
import { errorReason } from "../../kernel/errors.js";
import { type Subject, type SubjectDataContributor, subjectActors } from "../../kernel/governance/index.js";
import type { IngestionHandler } from "./ingestion-handler.js";
import type { ContentStore } from "./ports.js";

/**
 * The documents a subject uploaded: those whose first DocumentQueued event (the upload) was
 * appended by the subject's key — or, for a user, by any principal acting as the user (its
 * access token, sign-in sessions, owned keys: {@link subjectActors}) or owned by the user under
 * document access control. A session uploads nothing.
 *
 * The uploads are found through `events_type_tenant_actor_idx` (type, tenant, actor), the
 * first-upload check through the (stream, version) key: no scan of the tenant's events
 * (`EXPLAIN` in services/kernel/governance/subject-requests.int.test.ts).
 */
export const UPLOADS_BY_ACTORS_SQL = `SELECT e.payload->>'documentId' AS document_id FROM platform.events e
       WHERE e.type = 'nexus.events.v1.DocumentQueued' AND e.metadata->>'tenant_id' = $1 AND e.metadata->>'actor' = ANY($2::text[])
         AND NOT EXISTS (SELECT 1 FROM platform.events f
                         WHERE f.stream_id = e.stream_id AND f.version < e.version AND f.type = 'nexus.events.v1.DocumentQueued')`;

async function documentsOf(q: Queryable, tenantId: string, subject: Subject): Promise<string[]> {
  if (subject.scope === "session") return [];
  const { rows } = await q.query<{ document_id: string }>(
    `SELECT d.document_id FROM ingestion.documents d
     WHERE d.tenant_id = $1 AND (
       d.document_id IN (${UPLOADS_BY_ACTORS_SQL})
       ${subject.scope === "user" ? "OR d.document_id IN (SELECT document_id FROM retrieval.document_access WHERE tenant_id = $1 AND owner_user_id = $3)" : ""})
     ORDER BY d.seq`,
    subject.scope === "user" ? [tenantId, subjectActors(subject), subject.id] : [tenantId, subjectActors(subject)],
  );
  return rows.map((r) => r.document_id);
}

/**
 * Ingestion's part of data-subject requests (docs/governance.md#data-subject-requests): the
 * documents the subject uploaded, with their metadata and original bytes (opened, base64); an
 * erase deletes each through the DeleteDocument command, keeping one a legal hold covers.
 */
export function ingestionSubjectContributor(o: { handler: IngestionHandler; contents: ContentStore }): SubjectDataContributor {
  return {
    part: "documents",
    async export(q, tenantId, subject) {
      const ids = await documentsOf(q, tenantId, subject);
      if (ids.length === 0) return [];
      const { rows } = await q.query<{
        document_id: string;
        corpus_id: string;
        filename: string;
        media_type: string;
        size_bytes: string;
        content_sha256: string;
        metadata: unknown;
        status: string;
        created_at: Date;
      }>(
        `SELECT document_id, corpus_id, filename, media_type, size_bytes::text AS size_bytes, content_sha256, metadata, status, created_at
         FROM ingestion.documents WHERE tenant_id = $1 AND document_id = ANY($2::text[]) ORDER BY seq`,
        [tenantId, ids],
      );
      const out: unknown[] = [];
      for (const d of rows) {
        const bytes = await o.contents.get(q, tenantId, d.content_sha256);
        out.push({
          documentId: d.document_id,
          corpusId: d.corpus_id,
          filename: d.filename,
          mediaType: d.media_type,
          sizeBytes: Number(d.size_bytes),
          sha256: d.content_sha256,
          metadata: d.metadata,
          status: d.status,
          createdAt: d.created_at.toISOString(),
          contentBase64: bytes ? Buffer.from(bytes).toString("base64") : "",
        });
      }
      return out;
    },
    async erase(db, tenantId, subject) {
      let removed = 0;
      const held: string[] = [];
      for (const id of await documentsOf(db, tenantId, subject)) {
        try {
          await o.handler.eraseDocument(tenantId, id, "governance:erase");
          removed++;
        } catch (err) {
          if (errorReason(err) !== "LEGAL_HOLD_ACTIVE") throw err;
          held.push(id);
        }
      }
      return {
        removed,
        kept: held.length,
        ...(held.length > 0 ? { note: `document(s) ${held.join(", ")} kept under legal hold` } : {}),
      };
    },
  };
}
