import { type JetStreamClient, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Logger, pino } from "pino";
import type { Database } from "../db/ports.js";
import { backoffDelayMs } from "../resilience/backoff.js";
import {
  advanceCheckpoint,
  type CheckpointLease,
  claimCheckpoint,
  leaseOwnerId,
  releaseCheckpoint,
  rewindCheckpoint,
} from "./checkpoint-lease.js";
import { readAll } from "./event-store.js";
import { domainOf, eventsPublished, outboxPending, relayFailures } from "./metrics.js";
import { eventHeaders } from "./nats-message.js";
import type { EnsuredStream } from "./nats-streams.js";
import { EVENTS_CHANNEL } from "./platform-migrations.js";
import type { RecordedEvent } from "./ports.js";
import { DEFAULT_SUBJECT_PREFIX, subjectOf } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";

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
  /**
   * Makes sure the target streams exist and says which events stream that is (the NATS bus
   * passes its own). Called before the first round, after a failed round and after every
   * reconnect, so a NATS server that came back with empty storage gets its streams back.
   */
  ensureStreams?: () => Promise<EnsuredStream>;
  /**
   * When the events stream turns out to have been recreated (NATS lost its storage), events
   * that occurred this long before are published again: they may have been in the lost stream
   * without every consumer having them yet (consumers skip the ones they already handled).
   * Default 3 600 000 ms (1 h).
   */
  replayOnStreamLossMs?: number;
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
  /** Times this relay found the events stream recreated and replayed the recent outbox into it. */
  replays: number;
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
 * The target stream must exist (the NATS bus ensures it before starting the relay); with
 * `ensureStreams` the relay re-ensures it after failures and reconnects, and when it finds the
 * stream recreated (a NATS server restarted with empty storage) it rewinds its checkpoint by
 * `replayOnStreamLossMs` so what the lost stream held goes out again.
 *
 * While NATS is down, rounds back off (doubling up to `retry.maxMs`); NOTIFYs of new events do
 * not cut the wait short — only a reconnect or stop() does. It logs once when publishing stops
 * working and once when it works again, not at every try.
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
  const replayMs = options.replayOnStreamLossMs ?? 3_600_000;
  // NOTIFYs wake `signal` (between healthy rounds); only reconnects and stop() wake `retrySignal`
  // (between failed rounds), so a busy outbox cannot turn the backoff into a busy loop.
  const signal = new WakeSignal();
  const retrySignal = new WakeSignal();
  // Identity (creation time) of the events stream as last seen; a change means it was recreated.
  let knownStream: string | undefined;
  let checkStream = options.ensureStreams !== undefined;

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
    replays: 0,
  };
  let loop: Promise<void> | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let round: Promise<number> | undefined;
  // When this replica last claimed (renewed) the lease; 0 = claim at the next round.
  let leaseRenewedAt = 0;

  /** Tracks the connection so rounds are not attempted (and buffered) while NATS is away. */
  async function watchConnection(): Promise<void> {
    for await (const s of nats.status()) {
      if (!state.running) break;
      if (s.type === "disconnect") state.connected = false;
      if (s.type === "reconnect") {
        state.connected = true;
        // The server may have come back without its storage: look at the stream again.
        if (options.ensureStreams) checkStream = true;
        signal.wake();
        retrySignal.wake();
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

  /**
   * The checkpoint when this replica leads, claiming the lease only when a third of its TTL
   * passed since the last claim (like the local bus's consumers): a round woken by an append
   * then starts with the read, not with a checkpoint write and its commit, which would sit on
   * every event's commit → publish path. Safe: the lease outlives three renewal periods, a
   * replica that lost it finds out at its next checkpoint advance, and a publish repeated by
   * two replicas is deduplicated by Nats-Msg-Id.
   */
  async function leadingCheckpoint(): Promise<bigint | undefined> {
    if (state.leader && leaseRenewedAt > 0 && Date.now() - leaseRenewedAt < lease.ttlMs / 3) return state.checkpoint;
    const checkpoint = await claimCheckpoint(db, lease);
    state.leader = checkpoint !== undefined;
    leaseRenewedAt = checkpoint === undefined ? 0 : Date.now();
    if (checkpoint !== undefined) state.checkpoint = checkpoint;
    return checkpoint;
  }

  async function countPending(after: bigint): Promise<number> {
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE position > $1", [after]);
    return rows[0]?.n ?? 0;
  }

  async function oneRound(): Promise<number> {
    if (!state.connected) throw new Error("NATS is disconnected");
    const checkpoint = await leadingCheckpoint();
    if (checkpoint === undefined) return 0;
    const from = checkStream ? await verifyStream(checkpoint) : checkpoint;
    const events = await readAll(db, from, batchSize);
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
        leaseRenewedAt = 0;
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

  /**
   * Ensures the streams; when the events stream is not the one last seen, rewinds the
   * checkpoint so the recent outbox is published into the new stream. Returns where to read from.
   */
  async function verifyStream(checkpoint: bigint): Promise<bigint> {
    const ensured = await options.ensureStreams!();
    let from = checkpoint;
    const recreated = knownStream !== undefined && ensured.created !== knownStream;
    if (recreated && checkpoint > 0n) {
      const { rows } = await db.query<{ position: bigint }>(
        `SELECT COALESCE(max(position), 0) AS position FROM platform.events
         WHERE position <= $1 AND occurred_at < now() - $2 * interval '1 millisecond'`,
        [checkpoint, replayMs],
      );
      from = rows[0]?.position ?? 0n;
      if (from < checkpoint && (await rewindCheckpoint(db, lease, from))) {
        state.checkpoint = from;
        state.replays += 1;
        logger.warn(
          { from: String(from), to: String(checkpoint), replayWindowMs: replayMs },
          "the events stream was recreated (NATS lost its storage); publishing the recent outbox again",
        );
      } else {
        from = checkpoint;
      }
    }
    knownStream = ensured.created;
    checkStream = false;
    return from;
  }

  /** Rounds never overlap: runOnce() and the loop share one in-flight round. */
  function runRound(): Promise<number> {
    round ??= oneRound().finally(() => {
      round = undefined;
    });
    return round;
  }

  async function run(): Promise<void> {
    let downSince = 0;
    while (state.running) {
      try {
        const n = await runRound();
        if (state.failures > 0) {
          logger.info({ failedRounds: state.failures, downForMs: Date.now() - downSince }, "relay publishing again");
        }
        state.failures = 0;
        state.lastError = undefined;
        relayFailures.set(0);
        if (n === batchSize) continue;
        await signal.wait(state.leader ? pollIntervalMs : Math.max(pollIntervalMs, lease.ttlMs / 3));
      } catch (err) {
        // Re-read the stored checkpoint (and re-claim) at the next round.
        leaseRenewedAt = 0;
        state.failures += 1;
        state.lastError = (err as Error).message;
        relayFailures.set(state.failures);
        // Something may be wrong with the stream itself (deleted, or NATS lost its storage).
        if (options.ensureStreams) checkStream = true;
        const delay = backoffDelayMs(state.failures, { initialMs: retryInitial, maxMs: retryMax });
        if (state.failures === 1) {
          downSince = Date.now();
          logger.warn(
            { err, pending: state.pending },
            "relay cannot publish; retrying with backoff until it can (logged again when it recovers)",
          );
        } else {
          logger.debug({ err: state.lastError, failures: state.failures, retryInMs: delay }, "relay round failed again");
        }
        await retrySignal.wait(delay);
      }
    }
  }

  return {
    async start() {
      if (state.running) return;
      state.running = true;
      state.connected = !nats.isClosed();
      void watchConnection().catch(() => undefined);
      unlisten = await db
        .listen(EVENTS_CHANNEL, () => signal.wake())
        .catch((err: unknown) => {
          logger.warn({ err }, "LISTEN failed; relay polls only");
          return undefined;
        });
      loop = run();
    },
    async stop() {
      if (!state.running) return;
      state.running = false;
      signal.wake();
      retrySignal.wake();
      await loop;
      await unlisten?.();
      if (state.leader) await releaseCheckpoint(db, lease).catch(() => undefined);
      state.leader = false;
    },
    runOnce: runRound,
    status: () => ({ ...state }),
  };
}
