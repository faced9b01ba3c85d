import { pino } from "pino";
import { register } from "prom-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { migrateSchemas } from "../kernel/service/index.js";
import { DEFAULT_AUTH_SETTINGS } from "./auth-settings.js";
import { createAuthApplication } from "./create-auth-application.js";
import { refreshKeyExpiryMetric } from "./key-expiry-metric.js";
import { authMigrations } from "./migrations.js";

async function gaugeValue(kind: string): Promise<number | undefined> {
  const metric = await register.getSingleMetric("nexus_api_keys_expiring_soon")?.get();
  return metric?.values.find((v) => v.labels.kind === kind)?.value;
}

describeWithPostgres("nexus_api_keys_expiring_soon", () => {
  let testDb: TestDatabase;
  let db: Database;
  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_key_expiry");
    db = await createPgDatabase({ url: testDb.url, poolSize: 2 });
    await migratePlatform(db);
    await migrateSchemas(db, [authMigrations]);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("counts usable platform keys that expire within 7 days, not later ones, expired or revoked ones", async () => {
    const now = new Date();
    const app = createAuthApplication({ db, logger: pino({ level: "silent" }), clock: () => now, settings: DEFAULT_AUTH_SETTINGS });
    const days = (n: number) => new Date(now.getTime() + n * 86_400_000);
    await app.issuePlatformKey("bootstrap", "expires in 3 days", days(3));
    await app.issuePlatformKey("bootstrap", "expires in 30 days", days(30));
    await app.issuePlatformKey("bootstrap", "never expires", undefined);
    const revoked = await app.issuePlatformKey("bootstrap", "revoked, expires in 2 days", days(2));
    await db.query("UPDATE auth.api_keys SET revoked_at = now() WHERE id = $1", [revoked.key.id]);
    await refreshKeyExpiryMetric(db, now);
    expect(await gaugeValue("platform")).toBe(1);
    expect(await gaugeValue("tenant")).toBe(0);
    // Four days later the 3-day key has expired: it no longer counts.
    await refreshKeyExpiryMetric(db, days(4));
    expect(await gaugeValue("platform")).toBe(0);
    // 25 days later the 30-day key is within its last week.
    await refreshKeyExpiryMetric(db, days(25));
    expect(await gaugeValue("platform")).toBe(1);
  });
});
