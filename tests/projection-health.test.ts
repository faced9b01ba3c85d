/**
 * Projection health on a running `nexus serve --service auth,metering` (PostgreSQL + NATS): the
 * per-projection status on GET /projections/health and the lag metrics, refreshed every
 * NEXUS_PROJECTION_MONITOR_INTERVAL_MS (1 s here);
 * the consumer-fed audit trail's lag in seconds (its consumer's) next to them.
 */
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";

describeWithPostgresAndNats("projection health on the running server", () => {
  let db: TestDatabase;
  let nexus: NexusProcess;
  const token = uniqueToken("ph").toUpperCase();

  beforeAll(async () => {
    db = await createTestDatabase("nexus_projhealth");
    nexus = await startNexus({
      args: ["serve", "--service", "auth,metering", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: db.url,
        NATS_URL: TEST_NATS_URL,
        NEXUS_SUBJECT_PREFIX: uniqueToken("ph"),
        NEXUS_NATS_STREAM: suiteStreams(token).stream,
        NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
        OTEL_SDK_DISABLED: "true",
        LOG_LEVEL: "warn",
        // Measured every second here (default 5 s), so the suite sees changes quickly.
        NEXUS_PROJECTION_MONITOR_INTERVAL_MS: "1000",
      },
    });
  });
  afterAll(async () => {
    await nexus?.stop();
    await db?.drop();
    await deleteSuiteStreams(token);
  });

  const health = async () => {
    const started = performance.now();
    const res = await fetch(`${nexus.url}/projections/health`);
    const ms = performance.now() - started;
    return {
      status: res.status,
      ms,
      body: (await res.json()) as {
        projections: { projection: string; state: string; behind: number; lagSeconds?: number }[];
        consumers: { projection: string; consumer: string; lagSeconds?: number }[];
      },
    };
  };
  const metric = async (name: string) => {
    const text = await (await fetch(`${nexus.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(`${name}{projection="auth.tenants"}`));
    return line === undefined ? undefined : Number(line.split(" ").pop());
  };

  it("Given an up-to-date auth.tenants, Then /projections/health answers ok with lag 0 and the metrics say so", async () => {
    const h = await eventually("a first measurement", async () => {
      const r = await health();
      return r.status === 200 && r;
    });
    expect(h.body.projections).toEqual([
      expect.objectContaining({ projection: "auth.tenants", state: "ok", behind: 0, lagSeconds: 0 }),
      expect.objectContaining({ projection: "metering.usage_records", state: "ok", behind: 0, lagSeconds: 0 }),
    ]);
    expect(await metric("nexus_projection_lag_seconds")).toBe(0);
    expect(await metric("nexus_projection_healthy")).toBe(1);
  });

  it("Given a tenant row behind its stream, Then within seconds the lag is reported in seconds (> 0) and rows behind is 1", async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      // A tenant whose event exists but whose row is missing: the projection is behind by one stream.
      await client.query(
        `INSERT INTO platform.events (event_id, stream_id, version, type, topic, payload, metadata, occurred_at)
         VALUES (gen_random_uuid(), 'tenant-lagging', 1, 'nexus.events.v1.TenantCreated', 'auth.tenant_created', '{}'::jsonb, '{}'::jsonb, now() - interval '5 seconds')`,
      );
    } finally {
      await client.end();
    }
    const seen = await eventually(
      "the lag reported",
      async () => {
        const h = await health();
        return h.body.projections[0]?.behind === 1 && h.body.projections[0];
      },
      5000,
    );
    expect(seen.lagSeconds).toBeGreaterThanOrEqual(5);
    expect(await metric("nexus_projection_rows_behind")).toBe(1);
    expect(await metric("nexus_projection_lag_seconds")).toBeGreaterThanOrEqual(5);
  });

  it("Given the audit trail's consumer caught up, Then its lag in seconds is 0 on /projections/health and nexus_consumer_lag_seconds", async () => {
    const h = await eventually("the audit consumer's lag measured", async () => {
      const r = await health();
      return r.body.consumers.find((c) => c.projection === "audit.entries" && c.lagSeconds !== undefined);
    });
    expect(h).toEqual({ projection: "audit.entries", table: "audit.entries", consumer: "audit-trail", lagSeconds: 0 });
    const text = await (await fetch(`${nexus.url}/metrics`)).text();
    expect(text).toContain('nexus_consumer_lag_seconds{consumer="audit-trail"} 0');
  });
});
