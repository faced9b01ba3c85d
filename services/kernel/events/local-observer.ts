import type { Logger } from "pino";
import type { Database } from "../db/ports.js";
import { backoffDelayMs } from "../resilience/backoff.js";
import { lastPosition, readAll } from "./event-store.js";
import { yieldToIo } from "./foreground.js";
import type { Observation, ObservedEvent, ObserveOptions, RecordedEvent } from "./ports.js";
import { subjectOf, topicMatcher } from "./topics.js";
import { WakeSignal } from "./wake-signal.js";

/** What a local observer needs from its bus. */
export interface LocalObserverContext {
  db: Database;
  subjectPrefix: string;
  logger: Logger;
  /** Longest sleep between polls; NOTIFY on append wakes the observer sooner. */
  pollIntervalMs: number;
  /** The longest sleep between polls right now (longer while NOTIFY works); default `pollIntervalMs`. */
  currentPollMs?: () => number;
  batchSize: number;
  /** Called with the observer's wake function; returns an unregister function. */
  register(wake: () => void): () => void;
}

/** The observed form of a stored event. */
export function observedOf(e: RecordedEvent, subjectPrefix: string): ObservedEvent {
  return {
    eventId: e.eventId,
    type: e.type,
    streamId: e.streamId,
    version: e.version,
    payload: e.payload,
    metadata: e.metadata,
    subject: subjectOf(subjectPrefix, e.topic),
    topic: e.topic,
    occurredAt: e.occurredAt,
  };
}

/**
 * The local bus's per-process observer: reads `platform.events` after the position it
 * started at, in global order (positions are handed out in commit order, so nothing is
 * skipped), and hands matching events to the handler. No checkpoint is stored: each process
 * keeps its own position in memory. A failed poll marks the feed down until a poll succeeds.
 */
export async function createLocalObserver(ctx: LocalObserverContext, options: ObserveOptions): Promise<Observation> {
  const matches = topicMatcher(options.subject);
  const logger = ctx.logger.child({ component: "local-observer", subject: options.subject });
  const signal = new WakeSignal();
  let position = await lastPosition(ctx.db);
  let running = true;
  let live = true;

  const setLive = (next: boolean): void => {
    if (live === next) return;
    live = next;
    options.onStateChange?.(next);
  };

  async function round(): Promise<boolean> {
    // Background work: let pending I/O (a caller's answer) go first.
    await yieldToIo();
    const events = await readAll(ctx.db, position, ctx.batchSize);
    for (const e of events) {
      position = e.position;
      if (!matches(e.topic)) continue;
      try {
        await options.handler(observedOf(e, ctx.subjectPrefix));
      } catch (err) {
        logger.warn({ err, eventId: e.eventId }, "observer handler failed; the event is skipped");
      }
    }
    return events.length === ctx.batchSize;
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (running) {
      try {
        const more = await round();
        failures = 0;
        setLive(true);
        if (!more) await signal.wait(ctx.currentPollMs?.() ?? ctx.pollIntervalMs);
      } catch (err) {
        failures += 1;
        setLive(false);
        logger.warn({ err, failures }, "observer poll failed; retrying");
        await signal.wait(backoffDelayMs(failures + 1, { initialMs: 100, maxMs: 10_000 }));
      }
    }
  }

  const unregister = ctx.register(() => signal.wake());
  const loop = run();
  return {
    get live() {
      return live;
    },
    async stop() {
      if (!running) return;
      running = false;
      unregister();
      signal.wake();
      await loop;
    },
  };
}
