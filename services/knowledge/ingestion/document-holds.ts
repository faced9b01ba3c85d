import type { Queryable } from "../../kernel/db/ports.js";
import type { HoldSubject } from "../../kernel/governance/index.js";
import { documentStreamId } from "./document-events.js";

/**
 * What a legal hold may name to cover a document: the document, the key that uploaded it (the
 * actor of its first DocumentQueued event), and the user — the one whose access token
 * uploaded it, or its owner under document access control.
 */
export async function documentHoldSubjects(q: Queryable, tenantId: string, documentId: string): Promise<HoldSubject[]> {
  const subjects: HoldSubject[] = [{ scope: "document", id: documentId }];
  const { rows } = await q.query<{ actor: string | null; owner: string | null }>(
    `SELECT (SELECT e.metadata->>'actor' FROM platform.events e
             WHERE e.stream_id = $3 AND e.type = 'nexus.events.v1.DocumentQueued' ORDER BY e.version LIMIT 1) AS actor,
            (SELECT a.owner_user_id FROM retrieval.document_access a WHERE a.tenant_id = $1 AND a.document_id = $2) AS owner`,
    [tenantId, documentId, documentStreamId(tenantId, documentId)],
  );
  const actor = rows[0]?.actor ?? "";
  const owner = rows[0]?.owner ?? "";
  if (actor) subjects.push({ scope: "key", id: actor });
  if (actor.startsWith("user:")) subjects.push({ scope: "user", id: actor.slice("user:".length) });
  if (owner) subjects.push({ scope: "user", id: owner });
  return subjects;
}
