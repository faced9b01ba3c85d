import type { Database, Queryable } from "../db/ports.js";
import { domainError } from "../errors.js";
import { metadataFromJson } from "./event-metadata.js";
import { dlqDeadLettered, dlqMessages } from "./metrics.js";
import { EVENTS_CHANNEL } from "./platform-migrations.js";
import type { DeadLetter, DeadLetterStore, ListDeadLettersOptions, ReplayResult } from "./ports.js";

/** The `stream` label of the local bus's DLQ depth gauge. */
export const LOCAL_DLQ_NAME = "local";

/** A failed delivery being parked by the local bus. */
export interface LocalParkedDelivery {
  consumer: string;
  position: bigint;
  subject: string;
  deliveryCount: number;
  error: string;
  replayCount: number;
}

/**
 * Parks a failed delivery in `platform.local_dead_letters` (inside the caller's transaction).
 * The payload is not copied: the event row it points to is immutable.
 */
export async function parkLocalDelivery(tx: Queryable, parked: LocalParkedDelivery): Promise<void> {
  await tx.query(
    `INSERT INTO platform.local_dead_letters (consumer, position, subject, delivery_count, error, replay_count)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [parked.consumer, parked.position, parked.subject, parked.deliveryCount, parked.error.slice(0, 4096), parked.replayCount],
  );
  dlqDeadLettered.inc({ consumer: parked.consumer });
}

interface DeadLetterRow {
  seq: bigint;
  consumer: string;
  subject: string;
  delivery_count: number;
  error: string;
  replay_count: number;
  dead_lettered_at: Date;
  event_id: string;
  type: string;
  stream_id: string;
  payload: unknown;
  metadata: unknown;
}

/**
 * The local bus's dead-letter queue (`platform.local_dead_letters`). Replay marks the letter
 * replayed (kept for history) and schedules the event for its consumer again with a fresh
 * delivery count; other consumers are not disturbed.
 */
export function createLocalDeadLetters(db: Database): DeadLetterStore {
  const store: DeadLetterStore = {
    async list(opts: ListDeadLettersOptions = {}) {
      const params: unknown[] = [opts.limit ?? 100];
      if (opts.consumer) params.push(opts.consumer);
      const { rows } = await db.query<DeadLetterRow>(
        `SELECT d.seq, d.consumer, d.subject, d.delivery_count, d.error, d.replay_count, d.dead_lettered_at,
                e.event_id, e.type, e.stream_id, e.payload, e.metadata
         FROM platform.local_dead_letters d JOIN platform.events e ON e.position = d.position
         WHERE d.replayed_at IS NULL ${opts.consumer ? "AND d.consumer = $2" : ""}
         ORDER BY d.seq LIMIT $1`,
        params,
      );
      return rows.map(
        (r): DeadLetter => ({
          seq: Number(r.seq),
          consumer: r.consumer,
          subject: r.subject,
          eventId: r.event_id,
          type: r.type,
          streamId: r.stream_id,
          payload: r.payload,
          metadata: metadataFromJson(r.metadata),
          deliveryCount: r.delivery_count,
          error: r.error,
          deadLetteredAt: r.dead_lettered_at,
          replayCount: r.replay_count,
        }),
      );
    },

    async replay(seq: number): Promise<ReplayResult> {
      const result = await db.transaction(async (tx) => {
        const { rows } = await tx.query<{ consumer: string; position: bigint; subject: string; replay_count: number; event_id: string }>(
          `UPDATE platform.local_dead_letters d SET replayed_at = now()
           FROM platform.events e
           WHERE d.seq = $1 AND d.replayed_at IS NULL AND e.position = d.position
           RETURNING d.consumer, d.position, d.subject, d.replay_count, e.event_id`,
          [seq],
        );
        const letter = rows[0];
        if (!letter) return undefined;
        const replayCount = letter.replay_count + 1;
        await tx.query(
          `INSERT INTO platform.local_bus_retries (consumer, position, deliveries, next_attempt_at, replay_count)
           VALUES ($1, $2, 0, now(), $3)
           ON CONFLICT (consumer, position) DO UPDATE
             SET deliveries = 0, next_attempt_at = now(), last_error = NULL, replay_count = EXCLUDED.replay_count`,
          [letter.consumer, letter.position, replayCount],
        );
        // Wake the consumer (in this or another process) now rather than at its next poll.
        await tx.query(`SELECT pg_notify('${EVENTS_CHANNEL}', '')`);
        return { seq, consumer: letter.consumer, subject: letter.subject, eventId: letter.event_id, replayCount };
      });
      if (!result) throw domainError("NOT_FOUND", `no parked dead letter ${seq}`, { seq });
      await store.depth().catch(() => undefined);
      return result;
    },

    async depth() {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM platform.local_dead_letters WHERE replayed_at IS NULL",
      );
      const n = rows[0]?.n ?? 0;
      dlqMessages.set({ stream: LOCAL_DLQ_NAME }, n);
      return n;
    },
  };
  return store;
}
