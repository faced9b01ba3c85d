import type { Database } from "../kernel/db/ports.js";
import { type EventBus, lastPosition, type Observation, readTenantEvents } from "../kernel/events/index.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import type { BucketStore } from "../kernel/limits/bucket-store.js";

/** What one watch asks for. */
export interface WatchQuery {
  tenantId: string;
  streamIds: readonly string[];
  types: readonly string[];
  /** Resume after this position; undefined = from the current end. */
  afterPosition: bigint | undefined;
  /** Whose throttle bucket the deliveries draw from (the API key id). */
  client: string;
}

/** One item of a feed. */
export type FeedItem =
  | { kind: "event"; event: RecordedEvent }
  | { kind: "caught_up"; position: bigint }
  | { kind: "heartbeat"; position: bigint };

/** Options of {@link ChangeFeed}. */
export interface ChangeFeedOptions {
  db: Database;
  bus: EventBus;
  /** Per-client buckets (in memory: the throttle is per process). */
  buckets: BucketStore;
  /** Deliveries per second per client. Default 100 (R7.5). */
  ratePerSecond?: number;
  /** Idle time between heartbeats, and the poll interval when no wake-up arrives. Default 1000 ms. */
  heartbeatMs?: number;
  /** Rows per read. Default 200. */
  pageSize?: number;
}

/**
 * The tenant change feed behind WatchEvents. The event store is the source of truth: each
 * watch reads its tenant's events from `platform.events` by position (so it resumes exactly
 * and misses nothing), and one bus observer per process only wakes the watches when anything
 * was appended, so a new event reaches watchers in about the time of one read. Without the
 * observer (it is down, or events arrive from another replica while it reconnects) watches
 * poll once per heartbeat.
 */
export class ChangeFeed {
  private readonly waiters = new Set<() => void>();
  private observation: Promise<Observation | undefined> | undefined;
  private readonly rate: number;
  private readonly heartbeatMs: number;
  private readonly pageSize: number;

  constructor(private readonly options: ChangeFeedOptions) {
    this.rate = options.ratePerSecond ?? 100;
    this.heartbeatMs = options.heartbeatMs ?? 1000;
    this.pageSize = options.pageSize ?? 200;
  }

  /** Starts the process's observer on first use (never blocks the caller for long: failures fall back to polling). */
  private ensureObserver(): void {
    this.observation ??= this.options.bus.observe({ subject: ">", handler: () => this.wakeAll() }).catch(() => {
      this.observation = undefined;
      return undefined;
    });
  }

  private wakeAll(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Waits up to `ms` for an append anywhere, or `signal`. */
  private idle(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  /** Waits until the client's bucket holds a token (the throttle slows delivery, it never drops). */
  private async throttle(client: string, signal: AbortSignal): Promise<void> {
    for (;;) {
      const r = await this.options.buckets.take([{ name: `watch:${client}`, limit: { ratePerSecond: this.rate, burst: this.rate } }]);
      if (r.allowed || signal.aborted) return;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, r.retryAfterMs);
        signal.addEventListener(
          "abort",
          () => {
            clearTimeout(t);
            resolve();
          },
          { once: true },
        );
      });
    }
  }

  /** The feed of one watch, until `signal` aborts. */
  async *watch(q: WatchQuery, signal: AbortSignal): AsyncGenerator<FeedItem> {
    this.ensureObserver();
    const { db } = this.options;
    let position = q.afterPosition ?? (await lastPosition(db));
    let caughtUp = false;
    let lastSent = Date.now();
    while (!signal.aborted) {
      const upTo = await lastPosition(db);
      while (position < upTo && !signal.aborted) {
        const page = await readTenantEvents(db, {
          tenantId: q.tenantId,
          afterPosition: position,
          upToPosition: upTo,
          streamIds: q.streamIds,
          types: q.types,
          limit: this.pageSize,
        });
        for (const event of page.events) {
          await this.throttle(q.client, signal);
          if (signal.aborted) return;
          yield { kind: "event", event };
          lastSent = Date.now();
        }
        position = page.readTo;
      }
      if (!caughtUp) {
        caughtUp = true;
        yield { kind: "caught_up", position };
        lastSent = Date.now();
      } else if (Date.now() - lastSent >= this.heartbeatMs) {
        yield { kind: "heartbeat", position };
        lastSent = Date.now();
      }
      // Until an append wakes the feed, or the next heartbeat is due.
      await this.idle(Math.max(1, this.heartbeatMs - (Date.now() - lastSent)), signal);
    }
  }

  /** Stops the observer. */
  async close(): Promise<void> {
    const o = await this.observation;
    this.observation = undefined;
    await o?.stop();
    this.wakeAll();
  }
}
