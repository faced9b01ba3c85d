import { createMemoryBucketStore, createPostgresBucketStore } from "../kernel/limits/bucket-store.js";
import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { ChangeFeed } from "./change-feed.js";
import { EventStoreHandler } from "./event-store-handler.js";
import { eventStoreRoutes } from "./routes.js";
import { StreamHistory } from "./stream-history.js";

/** The event store API's parts, with the feed and handler inside (tests call them directly). */
export interface EventStoreParts extends ServiceParts {
  feed: ChangeFeed;
  handler: EventStoreHandler;
}

/** Assembles the event store API: the change feed (per-process throttle buckets, NEXUS_WATCH_EVENTS_PER_SECOND), temporal history reads and the handler. */
export function createEventStoreParts(ctx: ServiceContext): EventStoreParts {
  const buckets = createMemoryBucketStore();
  const feed = new ChangeFeed({ db: ctx.db, bus: ctx.bus, buckets, ratePerSecond: ctx.config.watchEventsPerSecond });
  // Temporal query limits are shared by replicas on PostgreSQL (platform.rate_buckets).
  const temporalBuckets = ctx.db.dialect === "postgres" ? createPostgresBucketStore(ctx.db) : createMemoryBucketStore();
  const history = new StreamHistory({ db: ctx.db, buckets: temporalBuckets, logger: ctx.logger, clock: () => ctx.clock().getTime() });
  const handler = new EventStoreHandler(feed, history, ctx.db, ctx.offboarding);
  return {
    feed,
    handler,
    handlers: [eventStoreRoutes(handler)],
    shutdown: async () => {
      await feed.close();
      buckets.close();
      temporalBuckets.close();
    },
  };
}
