import type { Database, Queryable } from "../kernel/db/ports.js";
import { errorMetadata, errorReason } from "../kernel/errors.js";
import {
  assertNoLegalHold,
  type HoldSubject,
  type Subject,
  type SubjectDataContributor,
  subjectActors,
} from "../kernel/governance/index.js";
import type { SessionRepository } from "./ports.js";

/** What a legal hold may name to cover a session: the session, the key and the user that started it. */
export function sessionHoldSubjects(sessionId: string, owner: { keyId: string; userId: string } | undefined): HoldSubject[] {
  const subjects: HoldSubject[] = [{ scope: "session", id: sessionId }];
  if (owner?.keyId) subjects.push({ scope: "key", id: owner.keyId });
  if (owner?.userId) subjects.push({ scope: "user", id: owner.userId });
  return subjects;
}

/**
 * The subject's sessions: the session itself, those a key started, or those a user started —
 * as the user, or with a key or sign-in session acting as the user ({@link subjectActors}).
 */
async function sessionsOf(q: Queryable, tenantId: string, subject: Subject): Promise<string[]> {
  const match =
    subject.scope === "session"
      ? "session_id = $2"
      : subject.scope === "key"
        ? "created_by_key = $2"
        : "(created_by_user = $2 OR created_by_key = ANY($3::text[]))";
  const { rows } = await q.query<{ session_id: string }>(
    `SELECT session_id FROM agent.sessions WHERE tenant_id = $1 AND ${match} ORDER BY created_at, session_id`,
    subject.scope === "user" ? [tenantId, subject.id, subjectActors(subject)] : [tenantId, subject.id],
  );
  return rows.map((r) => r.session_id);
}

/**
 * The agent's part of data-subject requests (docs/governance.md#data-subject-requests): the
 * subject's sessions with every message and citation, opened; an erase deletes them (messages
 * cascade) one session per transaction, keeping — and counting — a session a legal hold covers.
 */
export function agentSubjectContributor(sessions: SessionRepository): SubjectDataContributor {
  return {
    part: "sessions",
    async export(q, tenantId, subject) {
      const out: unknown[] = [];
      for (const id of await sessionsOf(q, tenantId, subject)) {
        const s = await sessions.get(q, tenantId, id);
        if (!s) continue;
        const messages = await sessions.recentMessages(q, tenantId, id, 1_000_000);
        out.push({
          sessionId: s.sessionId,
          corpusId: s.corpusId,
          title: s.title,
          createdAt: s.createdAt.toISOString(),
          updatedAt: s.updatedAt.toISOString(),
          messages: messages.map((m) => ({
            messageId: m.messageId,
            role: m.role,
            text: m.text,
            citations: m.citations,
            requestId: m.requestId,
            createdAt: m.createdAt.toISOString(),
          })),
        });
      }
      return out;
    },
    async erase(db: Database, tenantId, subject) {
      let removed = 0;
      let kept = 0;
      const holds = new Set<string>();
      for (const id of await sessionsOf(db, tenantId, subject)) {
        try {
          await db.transaction(async (tx) => {
            const owner = await sessions.owner(tx, tenantId, id);
            await assertNoLegalHold(tx, tenantId, sessionHoldSubjects(id, owner), `erase session ${id}`);
            if (await sessions.delete(tx, tenantId, id)) removed++;
          });
        } catch (err) {
          if (errorReason(err) !== "LEGAL_HOLD_ACTIVE") throw err;
          kept++;
          holds.add(errorMetadata(err).hold_id ?? "");
        }
      }
      return { removed, kept, ...(kept > 0 ? { note: `${kept} session(s) kept under legal hold ${[...holds].join(", ")}` } : {}) };
    },
  };
}
