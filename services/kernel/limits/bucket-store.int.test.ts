import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { migratePlatform } from "../events/platform-migrations.js";
import { migrateSchemas } from "../service/index.js";
import { createPostgresBucketStore } from "./bucket-store.js";
import { limitsMigrations } from "./migrations.js";

describeWithPostgres("rate-limit buckets shared through PostgreSQL", () => {
  let testDb: TestDatabase;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_limits");
    a = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    b = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    await migratePlatform(a);
    await migrateSchemas(a, [limitsMigrations]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await testDb?.drop();
  });

  it("two replicas draw from one bucket: 40 concurrent calls against a burst of 10 pass exactly 10 times", async () => {
    const replicas = [createPostgresBucketStore(a), createPostgresBucketStore(b)];
    const bucket = [{ name: "k:concurrent:read", limit: { ratePerSecond: 0.01, burst: 10 } }];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => replicas[i % 2]!.take(bucket)));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
    const refused = results.find((r) => !r.allowed);
    expect(refused).toMatchObject({ allowed: false, refusedBy: 0 });
  });

  it("a call passes only when its key's and its tenant's buckets both hold a token, and takes from neither otherwise", async () => {
    const store = createPostgresBucketStore(a);
    const tenant = { name: "t:shared:run", limit: { ratePerSecond: 0.01, burst: 3 } };
    const key1 = { name: "k:one:run", limit: { ratePerSecond: 0.01, burst: 2 } };
    const key2 = { name: "k:two:run", limit: { ratePerSecond: 0.01, burst: 2 } };
    expect((await store.take([key1, tenant])).allowed).toBe(true);
    expect((await store.take([key1, tenant])).allowed).toBe(true);
    // key1 is empty: refused by the key's bucket (index 0), and the tenant keeps its last token.
    expect(await store.take([key1, tenant])).toMatchObject({ allowed: false, refusedBy: 0 });
    expect((await store.take([key2, tenant])).allowed).toBe(true);
    // Now the tenant is empty though key2 has a token left: refused by the tenant (index 1).
    const r = await store.take([key2, tenant]);
    expect(r).toMatchObject({ allowed: false, refusedBy: 1 });
    expect(r.allowed ? 0 : r.retryAfterMs).toBeGreaterThan(1000);
  });

  it("refills by the database clock", async () => {
    const store = createPostgresBucketStore(a);
    const bucket = [{ name: "k:refill:read", limit: { ratePerSecond: 20, burst: 1 } }];
    expect((await store.take(bucket)).allowed).toBe(true);
    const refused = await store.take(bucket);
    expect(refused.allowed).toBe(false);
    await new Promise((r) => setTimeout(r, refused.allowed ? 0 : refused.retryAfterMs + 20));
    expect((await store.take(bucket)).allowed).toBe(true);
  });
});
