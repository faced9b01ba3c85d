import type { Database, Tx } from "../db/ports.js";
import { domainError } from "../errors.js";
import { appendToStream, type ExpectedVersion } from "../events/event-store.js";
import type { EventMetadata, NewEvent, RecordedEvent } from "../events/ports.js";
import { type EventSourcing, lockStream, type Rehydrated, rehydrate, snapshotIfDue } from "./rehydrate.js";

/** An aggregate's state with its stream's version (0 = the stream has no events yet). */
export interface Versioned<S> {
  state: S | undefined;
  version: number;
}

/**
 * One kind of aggregate as the command helper drives it: pure `decide` and `evolve` from the
 * domain file, and a repository that keeps the aggregate's state table — a projection of its
 * stream written in the same transaction as its events.
 *
 * @typeParam S state, E domain event, C command, K key (e.g. `{ tenantId, documentId }`).
 */
export interface Aggregate<S, E, C, K> {
  /** The aggregate's stream, e.g. `tenant-<id>`. */
  streamId(key: K): string;
  /**
   * Reads the state and version, locking the row until the transaction ends. Not called for an
   * aggregate with {@link Aggregate.eventSourcing}: its state comes from its stream.
   */
  load(tx: Tx, key: K): Promise<Versioned<S>>;
  /**
   * What happens when `command` meets `state`: the events to record (empty = nothing changes).
   * Refusals throw a domain error (services/kernel/errors.ts); the transaction rolls back.
   * `key` names the aggregate in refusals when there is no state to name it.
   */
  decide(command: C, state: S | undefined, key: K): readonly E[];
  /** The state after `event`; `key` gives a new aggregate its identity. */
  evolve(state: S | undefined, event: E, key: K): S;
  /**
   * Writes the new state (insert or update guarded by `expectedVersion`, the version read by
   * `load`); `version` is the stream version after the new events. `before` is the state `load`
   * returned: a state table whose rows carry consequences (reference counts, counters kept
   * with the row) needs what it replaces.
   */
  save(tx: Tx, key: K, state: S, expectedVersion: number, version: number, before: S | undefined): Promise<void>;
  /**
   * The stored form of a domain event (type and protobuf payload, see protobuf-event.ts);
   * `state` is the state once the event applied, `key` names the aggregate when it has none.
   */
  toEvent(event: E, state: S, key: K): NewEvent;
  /**
   * Opt-in event sourcing (R2): when set, commands rebuild the state from the stream (latest
   * snapshot + the events after it, see rehydrate.ts) under a per-stream lock instead of
   * calling `load`, `save` keeps the state table as a projection, and snapshots are taken by
   * the policy's thresholds. `toEvent` must then set `occurredAt` when `evolve` keeps times.
   */
  eventSourcing?: EventSourcing<S, E, K>;
}

/** Options of {@link executeCommand} and {@link executeInTransaction}. */
export interface CommandOptions {
  /**
   * The version the caller last saw (optimistic concurrency on the API): a mismatch fails with
   * ABORTED / CONCURRENCY_CONFLICT before anything is decided. Default: the version just read.
   */
  expectedVersion?: number;
  /** Metadata of every appended event (tenantId, actor); request ids and trace context are added. */
  metadata?: EventMetadata;
}

/** What a command did. */
export interface CommandResult<S, E> {
  /** The state after the command (the loaded state when nothing changed). */
  state: S | undefined;
  /** The stream version after the command. */
  version: number;
  /** The events decided (empty when nothing changed). */
  events: readonly E[];
  /** The events as recorded in the event store. */
  recorded: readonly RecordedEvent[];
}

/**
 * Runs one command inside a transaction the caller already holds: load (locked) → decide →
 * evolve → save the state → append the events at the loaded version. The state row and the
 * events commit together (transactional outbox); a concurrent writer makes the append fail
 * with CONCURRENCY_CONFLICT, which rolls the whole transaction back.
 */
export async function executeInTransaction<S, E, C, K>(
  tx: Tx,
  aggregate: Aggregate<S, E, C, K>,
  key: K,
  command: C,
  options: CommandOptions = {},
): Promise<CommandResult<S, E>> {
  const streamId = aggregate.streamId(key);
  let rehydrated: Rehydrated<S> | undefined;
  if (aggregate.eventSourcing) {
    await lockStream(tx, streamId);
    rehydrated = await rehydrate(tx, aggregate, key);
  }
  const { state, version } = rehydrated ?? (await aggregate.load(tx, key));
  if (options.expectedVersion !== undefined && options.expectedVersion !== version) {
    throw domainError(
      "CONCURRENCY_CONFLICT",
      `${streamId} is at version ${version}, not ${options.expectedVersion}: re-read it and retry`,
      { stream_id: streamId, expected_version: String(options.expectedVersion), actual_version: String(version) },
    );
  }
  const events = aggregate.decide(command, state, key);
  if (events.length === 0) return { state, version, events, recorded: [] };
  let next = state;
  const stored: NewEvent[] = [];
  for (const e of events) {
    next = aggregate.evolve(next, e, key);
    stored.push(aggregate.toEvent(e, next as S, key));
  }
  const after = version + events.length;
  await aggregate.save(tx, key, next as S, version, after, state);
  const recorded = await appendToStream(tx, streamId, version, stored, options.metadata ? { metadata: options.metadata } : {});
  if (rehydrated) await snapshotIfDue(tx, aggregate, key, rehydrated, { state: next as S, version: after, appended: recorded });
  return { state: next, version: after, events, recorded };
}

/** {@link executeInTransaction} in a transaction of its own. */
export function executeCommand<S, E, C, K>(
  db: Database,
  aggregate: Aggregate<S, E, C, K>,
  key: K,
  command: C,
  options: CommandOptions = {},
): Promise<CommandResult<S, E>> {
  return db.transaction((tx) => executeInTransaction(tx, aggregate, key, command, options));
}

/**
 * Records facts on a stream that has no state to decide on (a run's lifecycle, access
 * decisions, usage): appended in the caller's transaction at `expectedVersion` (default "any":
 * facts from several writers interleave). The one other way events enter the store.
 */
export function recordFacts(
  tx: Tx,
  streamId: string,
  events: readonly NewEvent[],
  options: { expectedVersion?: ExpectedVersion; metadata?: EventMetadata } = {},
): Promise<RecordedEvent[]> {
  return appendToStream(tx, streamId, options.expectedVersion ?? "any", events, options.metadata ? { metadata: options.metadata } : {});
}
