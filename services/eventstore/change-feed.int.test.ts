import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { appendToStream, createLocalEventBus, type EventBus, migratePlatform } from "../kernel/events/index.js";
import { createMemoryBucketStore } from "../kernel/limits/bucket-store.js";
import { ChangeFeed, type FeedItem } from "./change-feed.js";

describeWithPostgres("change feed throttle and heartbeats (PostgreSQL, local bus)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: EventBus;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 3 });
    await migratePlatform(db);
    bus = await createLocalEventBus({ db });
    await db.transaction((tx) =>
      appendToStream(
        tx,
        "thing-1",
        0,
        Array.from({ length: 25 }, (_, i) => ({ type: "test.v1.ThingHappened", topic: "test.thing_happened", payload: { i } })),
        { metadata: { tenantId: "t-throttle" } },
      ),
    );
  });
  afterAll(async () => {
    await bus?.close();
    await db?.close();
    await testDb?.drop();
  });

  it("Given a 25-event backlog and a limit of 10/s, When one client reads it, Then the first 10 pass at once and the rest at the limit — none dropped", async () => {
    const feed = new ChangeFeed({ db, bus, buckets: createMemoryBucketStore(), ratePerSecond: 10, heartbeatMs: 200 });
    const abort = new AbortController();
    const started = Date.now();
    const got: FeedItem[] = [];
    for await (const item of feed.watch(
      { tenantId: "t-throttle", streamIds: [], types: [], afterPosition: 0n, client: "k1" },
      abort.signal,
    )) {
      got.push(item);
      if (item.kind === "caught_up") break;
    }
    const elapsed = Date.now() - started;
    abort.abort();
    await feed.close();
    const events = got.filter((i) => i.kind === "event");
    expect(events.map((i) => (i.kind === "event" ? (i.event.payload as { i: number }).i : -1))).toEqual(
      Array.from({ length: 25 }, (_, i) => i),
    );
    // 15 events beyond the burst of 10 need 1.5 s of refill at 10/s (a lower bound: never flaky).
    expect(elapsed).toBeGreaterThanOrEqual(1400);
  });

  it("Given an idle feed, Then heartbeats say it is alive and where it has read to; a new event wakes it", async () => {
    const feed = new ChangeFeed({ db, bus, buckets: createMemoryBucketStore(), heartbeatMs: 150 });
    const abort = new AbortController();
    const got: FeedItem[] = [];
    let appended = false;
    for await (const item of feed.watch(
      { tenantId: "t-idle", streamIds: [], types: [], afterPosition: undefined, client: "k2" },
      abort.signal,
    )) {
      got.push(item);
      if (!appended && got.filter((i) => i.kind === "heartbeat").length === 2) {
        appended = true;
        await db.transaction((tx) =>
          appendToStream(tx, "idle-1", 0, [{ type: "test.v1.ThingHappened", topic: "test.thing_happened", payload: { i: 99 } }], {
            metadata: { tenantId: "t-idle" },
          }),
        );
      }
      if (item.kind === "event") break;
    }
    abort.abort();
    await feed.close();
    expect(got[0]?.kind).toBe("caught_up");
    expect(got.filter((i) => i.kind === "heartbeat").length).toBeGreaterThanOrEqual(2);
    const last = got.at(-1);
    expect(last?.kind === "event" && last.event.streamId).toBe("idle-1");
  });
});
