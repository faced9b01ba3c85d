import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { pino, type Logger } from "pino";
import type { Database } from "../db/ports.js";
import {
  advanceCheckpoint,
  claimCheckpoint,
  leaseOwnerId,
  releaseCheckpoint,
  type CheckpointLease,
} from "./checkpoint-lease.js";
import { readAll } from "./event-store.js";
import { domainOf, eventsPublished, outboxPending } from "./metrics.js";
import { eventHeaders } from "./nats-message.js";
import { EVENTS_CHANNEL } from "./platform-migrations.js";
import type { RecordedEvent } from "./ports.js";
import { DEFAULT_SUBJECT_PREFIX, subjectOf } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";
import { backoffDelayMs } from "../resilience/backoff.js";

/** Options of {@link createOutboxRelay}. */
export interface OutboxRelayOptions {
  /** Database holding `platform.events` (the outbox). */
  db: Database;
  nats: NatsConnection;
  /** Checkpoint row in `platform.outbox_checkpoint`. Default "default". */
  name?: string;
  /** Default "nexus". */
  subjectPrefix?: string;
  /** Events published per round. Default 200. */
  batchSize?: number;
  /** Longest sleep between rounds; NOTIFY wakes it sooner. Default 1 000 ms. */
  pollIntervalMs?: number;
  /** JetStream publish ack timeout. Default 5 000 ms. */
  publishTimeoutMs?: number;
  /** Leadership lease among replicas. Default 30 000 ms. */
  leaseMs?: number;
  /** Retry delays after a failed round: doubling from `initialMs` to `maxMs`. Default 250 ms → 15 s. */
  retry?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
}

/** Progress of a relay. */
export interface RelayStatus {
  name: string;
  running: boolean;
  /** Holds the lease (this replica publishes). */
  leader: boolean;
  /** NATS connection is up. */
  connected: boolean;
  /** Last position acknowledged by JetStream and checkpointed. */
  checkpoint: bigint;
  /** Events appended but not yet published (as of the last round). */
  pending: number;
  /** Events this relay instance published (new in the stream). */
  published: number;
  /** Re-publishes JetStream recognised as duplicates (Nats-Msg-Id seen inside the window) and dropped. */
  duplicates: number;
  /** Consecutive failed rounds (0 when healthy). */
  failures: number;
  lastError: string | undefined;
}

/** The outbox relay: `platform.events` → NATS JetStream. */
export interface OutboxRelay {
  start(): Promise<void>;
  /** Stops after the current round and gives up the lease. */
  stop(): Promise<void>;
  /** Publishes one batch now (when this replica can lead); resolves to the number published. */
  runOnce(): Promise<number>;
  status(): RelayStatus;
}

/**
 * Publishes every event of the outbox to `<prefix>.<topic>` in global position order, with
 * `Nats-Msg-Id` = event id and the event's headers (type, stream, tenant, correlation, W3C
 * trace context). The checkpoint (`platform.outbox_checkpoint`) moves only past events
 * JetStream acknowledged, so nothing is lost while NATS is down: rounds fail, back off and
 * retry, and the backlog goes out once NATS is back. A crash between publish and checkpoint
 * re-publishes a few events; JetStream drops them as duplicates inside the stream's dedupe
 * window (default 2 min) — and consumers are idempotent for the rare case beyond it.
 *
 * Replicas: one relay per name publishes at a time (a lease on the checkpoint row); the others
 * stand by and take over when its lease lapses. Wakes on NOTIFY `platform_events`, else polls.
 *
 * The target stream must exist (the NATS bus ensures it before starting the relay).
 */
export function createOutboxRelay(options: OutboxRelayOptions): OutboxRelay {
  const { db, nats } = options;
  const name = options.name ?? "default";
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const batchSize = options.batchSize ?? 200;
  const pollIntervalMs = options.pollIntervalMs ?? 1_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
  const retryInitial = options.retry?.initialMs ?? 250;
  const retryMax = options.retry?.maxMs ?? 15_000;
  const logger = (options.logger ?? pino({ level: "silent" })).child({ component: "outbox-relay", relay: name });
  const lease: CheckpointLease = { table: "outbox_checkpoint", name, owner: leaseOwnerId(), ttlMs: options.leaseMs ?? 30_000 };
  const js: JetStreamClient = jetstream(nats, { timeout: publishTimeoutMs });
  const signal = new WakeSignal();

  const state: RelayStatus = {
    name,
    running: false,
    leader: false,
    connected: !nats.isClosed(),
    checkpoint: 0n,
    pending: 0,
    published: 0,
    duplicates: 0,
    failures: 0,
    lastError: undefined,
  };
  let loop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let round: Promise<number> | undefined;

  /** Tracks the connection so rounds are not attempted (and buffered) while NATS is away. */
  async function watchConnection(): Promise<void> {
    for await (const s of nats.status()) {
      if (!state.running) break;
      if (s.type === "disconnect") state.connected = false;
      if (s.type === "reconnect") {
        state.connected = true;
        signal.wake();
      }
    }
  }

  async function publishBatch(
    events: RecordedEvent[],
  ): Promise<{ published: RecordedEvent[]; duplicates: Set<RecordedEvent>; error?: unknown }> {
    // Publishes are pipelined on one connection, so JetStream stores them in send order;
    // only the acknowledged prefix counts as published.
    const acks = await Promise.allSettled(
      events.map((e) =>
        js.publish(subjectOf(prefix, e.topic), JSON.stringify(e.payload), {
          msgID: e.eventId,
          headers: eventHeaders(e),
          timeout: publishTimeoutMs,
        }),
      ),
    );
    const firstFailure = acks.findIndex((a) => a.status === "rejected");
    const published = firstFailure === -1 ? events : events.slice(0, firstFailure);
    const duplicates = new Set(
      published.filter((_, i) => {
        const ack = acks[i];
        return ack?.status === "fulfilled" && ack.value.duplicate;
      }),
    );
    const failed = firstFailure === -1 ? undefined : acks[firstFailure];
    return failed && failed.status === "rejected" ? { published, duplicates, error: failed.reason } : { published, duplicates };
  }

  async function countPending(after: bigint): Promise<number> {
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE position > $1", [after]);
    return rows[0]?.n ?? 0;
  }

  async function oneRound(): Promise<number> {
    if (!state.connected) throw new Error("NATS is disconnected");
    const checkpoint = await claimCheckpoint(db, lease);
    state.leader = checkpoint !== undefined;
    if (checkpoint === undefined) return 0;
    state.checkpoint = checkpoint;
    const events = await readAll(db, checkpoint, batchSize);
    if (events.length === 0) {
      state.pending = 0;
      outboxPending.set(0);
      return 0;
    }
    const { published, duplicates, error } = await publishBatch(events);
    const last = published[published.length - 1];
    if (last) {
      if (!(await advanceCheckpoint(db, lease, last.position))) {
        logger.warn("relay lease lost mid-round; another replica continues");
        state.leader = false;
      }
      state.checkpoint = last.position;
      for (const e of published) {
        if (duplicates.has(e)) continue;
        eventsPublished.inc({ domain: domainOf(e.topic) });
      }
      state.published += published.length - duplicates.size;
      state.duplicates += duplicates.size;
    }
    state.pending = await countPending(state.checkpoint);
    outboxPending.set(state.pending);
    if (error !== undefined) throw error;
    return published.length;
  }

  /** Rounds never overlap: runOnce() and the loop share one in-flight round. */
  function runRound(): Promise<number> {
    round ??= oneRound().finally(() => {
      round = undefined;
    });
    return round;
  }

  async function run(): Promise<void> {
    while (state.running) {
      try {
        const n = await runRound();
        if (state.failures > 0) logger.info({ failures: state.failures }, "relay recovered");
        state.failures = 0;
        state.lastError = undefined;
        if (n === batchSize) continue;
        await signal.wait(state.leader ? pollIntervalMs : Math.max(pollIntervalMs, lease.ttlMs / 3));
      } catch (err) {
        state.failures += 1;
        state.lastError = (err as Error).message;
        const delay = backoffDelayMs(state.failures, { initialMs: retryInitial, maxMs: retryMax });
        logger.warn({ err, failures: state.failures, retryInMs: delay }, "relay round failed; retrying");
        await signal.wait(delay);
      }
    }
  }

  return {
    async start() {
      if (state.running) return;
      state.running = true;
      state.connected = !nats.isClosed();
      void watchConnection().catch(() => undefined);
      unlisten = await db.listen(EVENTS_CHANNEL, () => signal.wake()).catch((err: unknown) => {
        logger.warn({ err }, "LISTEN failed; relay polls only");
        return undefined;
      });
      loop = run();
    },
    async stop() {
      if (!state.running) return;
      state.running = false;
      signal.wake();
      await loop;
      await unlisten?.();
      if (state.leader) await releaseCheckpoint(db, lease).catch(() => undefined);
      state.leader = false;
    },
    runOnce: runRound,
    status: () => ({ ...state }),
  };
}
