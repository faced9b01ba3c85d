import type { Queryable, Tx } from "../../kernel/db/ports.js";
import type { FieldCipher } from "../../kernel/keyring/index.js";
import type { SessionCursor, SessionRepository, TurnRecord } from "../ports.js";
import type { MessageRecord, SessionRecord, StoredCitation } from "../sessions/session-records.js";

interface SessionRow {
  tenant_id: string;
  session_id: string;
  corpus_id: string;
  title: string;
  message_count: number;
  created_at: Date;
  updated_at: Date;
}

interface MessageRow {
  session_id: string;
  message_id: string;
  role: "user" | "assistant";
  text: string;
  citations: StoredCitation[];
  request_id: string;
  created_at: Date;
}

const SESSION_COLUMNS = "tenant_id, session_id, corpus_id, title, message_count, created_at, updated_at";

/** Opens a session row's sealed title (no cipher: as stored). */
async function openSession(row: SessionRow, cipher: FieldCipher | undefined, q: Queryable): Promise<SessionRow> {
  return cipher ? { ...row, title: await cipher.openText(row.tenant_id, row.title, q) } : row;
}

/** Opens a message row's sealed text and citations (citations sealed: a JSON string `nxk1.…`). */
async function openMessage(row: MessageRow, tenantId: string, cipher: FieldCipher | undefined, q: Queryable): Promise<MessageRow> {
  if (!cipher) return row;
  const text = await cipher.openText(tenantId, row.text, q);
  const raw = row.citations as unknown;
  const citations = typeof raw === "string" ? (JSON.parse(await cipher.openText(tenantId, raw, q)) as StoredCitation[]) : row.citations;
  return { ...row, text, citations };
}

function session(row: SessionRow): SessionRecord {
  return {
    tenantId: row.tenant_id,
    sessionId: row.session_id,
    corpusId: row.corpus_id,
    title: row.title,
    messageCount: Number(row.message_count),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

function message(row: MessageRow): MessageRecord {
  return {
    messageId: row.message_id,
    sessionId: row.session_id,
    role: row.role,
    text: row.text,
    citations: Array.isArray(row.citations) ? row.citations : [],
    requestId: row.request_id,
    createdAt: new Date(row.created_at),
  };
}

/**
 * Sessions and messages in PostgreSQL (schema `agent`), every statement scoped by tenant. With
 * a cipher ("sessions" purpose) message texts, their citations (they quote documents) and
 * session titles (the first question) are sealed at rest; ids, roles, counts and times are not.
 */
export function createPostgresSessionRepository(cipher?: FieldCipher): SessionRepository {
  return {
    async get(q, tenantId, sessionId) {
      const { rows } = await q.query<SessionRow>(`SELECT ${SESSION_COLUMNS} FROM agent.sessions WHERE tenant_id = $1 AND session_id = $2`, [
        tenantId,
        sessionId,
      ]);
      return rows[0] ? session(await openSession(rows[0], cipher, q)) : undefined;
    },

    async recentMessages(q, tenantId, sessionId, limit) {
      const { rows } = await q.query<MessageRow>(
        `SELECT session_id, message_id, role, text, citations, request_id, created_at FROM (
           SELECT seq, session_id, message_id, role, text, citations, request_id, created_at
           FROM agent.messages WHERE tenant_id = $1 AND session_id = $2
           ORDER BY seq DESC LIMIT $3
         ) recent ORDER BY seq`,
        [tenantId, sessionId, limit],
      );
      const opened: MessageRow[] = [];
      for (const r of rows) opened.push(await openMessage(r, tenantId, cipher, q));
      return opened.map(message);
    },

    async list(q: Queryable, tenantId: string, page: { corpusId?: string; after?: SessionCursor; limit: number }) {
      const params: unknown[] = [tenantId];
      const where = ["tenant_id = $1"];
      if (page.corpusId) {
        params.push(page.corpusId);
        where.push(`corpus_id = $${params.length}`);
      }
      if (page.after) {
        params.push(page.after.updatedAt, page.after.sessionId);
        where.push(`(updated_at, session_id) < ($${params.length - 1}::timestamptz, $${params.length})`);
      }
      params.push(page.limit);
      const { rows } = await q.query<SessionRow>(
        `SELECT ${SESSION_COLUMNS} FROM agent.sessions WHERE ${where.join(" AND ")}
         ORDER BY updated_at DESC, session_id DESC LIMIT $${params.length}`,
        params,
      );
      const opened: SessionRow[] = [];
      for (const r of rows) opened.push(await openSession(r, cipher, q));
      return opened.map(session);
    },

    async owner(q: Queryable, tenantId: string, sessionId: string) {
      const { rows } = await q.query<{ key: string; user: string }>(
        `SELECT created_by_key AS key, created_by_user AS "user" FROM agent.sessions WHERE tenant_id = $1 AND session_id = $2`,
        [tenantId, sessionId],
      );
      return rows[0] ? { keyId: rows[0].key, userId: rows[0].user } : undefined;
    },

    async delete(tx: Tx, tenantId: string, sessionId: string) {
      const { rowCount } = await tx.query("DELETE FROM agent.sessions WHERE tenant_id = $1 AND session_id = $2", [tenantId, sessionId]);
      return rowCount > 0;
    },

    async recordTurn(tx: Tx, turn: TurnRecord) {
      const n = turn.messages.length;
      const seal = (text: string) => (cipher ? cipher.sealText(turn.tenantId, text, tx) : Promise.resolve(text));
      if (turn.newSession) {
        await tx.query(
          `INSERT INTO agent.sessions (tenant_id, session_id, corpus_id, title, message_count, created_at, updated_at, created_by_key, created_by_user)
           VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8)`,
          [
            turn.tenantId,
            turn.sessionId,
            turn.corpusId,
            await seal(turn.title),
            n,
            turn.at,
            turn.createdByKey ?? "",
            turn.createdByUser ?? "",
          ],
        );
      } else {
        const { rowCount } = await tx.query(
          `UPDATE agent.sessions SET corpus_id = $3, message_count = message_count + $4, updated_at = GREATEST(updated_at, $5::timestamptz)
           WHERE tenant_id = $1 AND session_id = $2`,
          [turn.tenantId, turn.sessionId, turn.corpusId, n, turn.at],
        );
        if (rowCount === 0) return false;
      }
      for (const m of turn.messages) {
        await tx.query(
          `INSERT INTO agent.messages (tenant_id, session_id, message_id, role, text, citations, request_id, created_at)
           VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)`,
          [
            turn.tenantId,
            turn.sessionId,
            m.messageId,
            m.role,
            await seal(m.text),
            // Sealed citations are stored as one JSON string.
            cipher?.sealing ? JSON.stringify(await seal(JSON.stringify(m.citations))) : JSON.stringify(m.citations),
            m.requestId,
            m.createdAt,
          ],
        );
      }
      return true;
    },
  };
}
