/**
 * Usage from run events on PostgreSQL + NATS JetStream: the outbox relay publishes the agent's
 * RunCompleted/RunFailed events, metering's durable consumer records each run exactly once
 * (a redelivered message and a re-appended event for the same run never count twice), settles
 * the run's reservation, and counts run units in Prometheus.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { jetstream } from "@nats-io/jetstream";
import { register } from "prom-client";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { RunCompletedSchema, RunFailedSchema } from "../../gen/nexus/events/v1/agent_events_pb.js";
import {
  CheckQuotaRequestSchema,
  GetUsageHistoryRequestSchema,
  GetUsageSummaryRequestSchema,
} from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { Period } from "../../gen/nexus/metering/v1/quota_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import type { Metering } from "../../tests/support/metering-harness.js";
import { contextFor, openMetering, tenantPrincipal, uniqueTenant } from "../../tests/support/metering-harness.js";
import { deleteSuiteStreams, suiteStreams } from "../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { appendToStream } from "../kernel/events/event-store.js";
import { consumerDeliveries } from "../kernel/events/metrics.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";
import { eventHeaders } from "../kernel/events/nats-message.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { subjectOf } from "../kernel/events/topics.js";
import { RUN_USAGE_CONSUMER } from "./metering-consumers.js";
import { DEFAULT_METERING_SETTINGS } from "./metering-settings.js";

describeWithPostgresAndNats("metering usage from run events (PostgreSQL + NATS)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let metering: Metering;
  const token = uniqueToken("m").toUpperCase();
  const rates = { tierMultipliers: { free: 1, pro: 1.5, enterprise: 2 }, toolCallOverhead: 0.25 };

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "metering-usage-suite" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
      relay: { pollIntervalMs: 50 },
      consumerHeartbeatMs: 1_000,
    });
    metering = await openMetering(db, bus, undefined, {
      settings: { ...DEFAULT_METERING_SETTINGS, rates },
      backoff: { initialMs: 50, maxMs: 200 },
    });
  });

  afterAll(async () => {
    await metering?.module.shutdown?.();
    await bus?.close();
    await deleteSuiteStreams(token);
    await db?.close();
    await testDb?.drop();
  });

  async function appendRun(event: ReturnType<typeof eventOf>, tenantId: string, requestId: string): Promise<RecordedEvent> {
    const [recorded] = await db.transaction((tx) =>
      appendToStream(tx, `run-${requestId}`, "any", [event], { metadata: { tenantId, actor: `key-${tenantId}` } }),
    );
    return recorded!;
  }

  function completed(tenantId: string, requestId: string, reservationId: string) {
    return eventOf(RunCompletedSchema, {
      tenantId,
      plan: Plan.PRO,
      requestId,
      sessionId: "s1",
      corpusId: "c1",
      reservationId,
      usage: { cpuSeconds: 2, gpuSeconds: 0.5, toolCalls: 4, inputTokens: 100n, outputTokens: 40n },
      completedAt: timestampFromDate(new Date()),
    });
  }

  async function processed(eventId: string): Promise<boolean> {
    const { rows } = await db.query("SELECT 1 FROM metering.processed_events WHERE consumer = $1 AND event_id = $2", [
      RUN_USAGE_CONSUMER,
      eventId,
    ]);
    return rows.length === 1;
  }

  async function summary(tenantId: string) {
    return metering.handler.getUsageSummary(
      create(GetUsageSummaryRequestSchema, { period: Period.MONTH }),
      contextFor(tenantPrincipal(tenantId)),
    );
  }

  async function duplicates(): Promise<number> {
    const m = await consumerDeliveries.get();
    return m.values.find((v) => v.labels.consumer === RUN_USAGE_CONSUMER && v.labels.outcome === "duplicate")?.value ?? 0;
  }

  async function runUnitsCounter(org: string): Promise<number> {
    const m = register.getSingleMetric("nexus_run_units_total");
    const values = (await m!.get()).values;
    return values.find((v) => v.labels.org === org && v.labels.tier === "pro")?.value ?? 0;
  }

  it("records a completed run once, even when JetStream delivers its message again", async () => {
    const tenantId = uniqueTenant();
    const ctx = contextFor(tenantPrincipal(tenantId));
    const r = await metering.handler.checkQuota(
      create(CheckQuotaRequestSchema, { tenantId, requestId: "run-1", estimatedRunUnits: 5 }),
      ctx,
    );
    const event = await appendRun(completed(tenantId, "run-1", r.reservationId), tenantId, "run-1");
    await eventually("the usage record", async () => (await summary(tenantId)).totals?.runsCompleted === 1n);

    // The same event published again under another message id: what a redelivery after a lost
    // ack, or a relay re-publish outside the dedupe window, looks like to the consumer.
    const before = await duplicates();
    await jetstream(bus.nats).publish(subjectOf(bus.subjectPrefix, event.topic), JSON.stringify(event.payload), {
      msgID: `${event.eventId}:again`,
      headers: eventHeaders(event),
    });
    await eventually("the redelivery to be seen", async () => (await duplicates()) > before);

    const s = await summary(tenantId);
    // max(2, 0.5) × 1.5 (pro) + 4 × 0.25 = 4 run units.
    expect(s.totals).toMatchObject({
      runsCompleted: 1n,
      runsFailed: 0n,
      runUnits: 4,
      cpuSeconds: 2,
      toolCalls: 4n,
      inputTokens: 100n,
      outputTokens: 40n,
    });
    expect(s.quota).toMatchObject({ runsUsed: 1n, runsReserved: 0n, runUnitsUsed: 4 });
    expect(await runUnitsCounter(tenantId)).toBe(4);
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM platform.events WHERE stream_id = $1", [
      `usage-${tenantId}`,
    ]);
    expect(rows[0]?.n).toBe(1);
  });

  it("a second event for the same run (new event id, same request id) changes nothing", async () => {
    const tenantId = uniqueTenant();
    const ctx = contextFor(tenantPrincipal(tenantId));
    const r = await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "run-2" }), ctx);
    await appendRun(completed(tenantId, "run-2", r.reservationId), tenantId, "run-2");
    await eventually("the usage record", async () => (await summary(tenantId)).totals?.runsCompleted === 1n);
    const replay = await appendRun(completed(tenantId, "run-2", r.reservationId), tenantId, "run-2");
    await eventually("the replayed event to be processed", () => processed(replay.eventId));
    const s = await summary(tenantId);
    expect(s.totals).toMatchObject({ runsCompleted: 1n, runUnits: 4 });
    expect(s.quota).toMatchObject({ runsUsed: 1n, runUnitsUsed: 4 });
  });

  it("a failed run gives its reservation back and is not charged", async () => {
    const tenantId = uniqueTenant();
    const ctx = contextFor(tenantPrincipal(tenantId));
    const r = await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "run-3" }), ctx);
    expect(r.windows[1]).toMatchObject({ runsReserved: 1n });
    await appendRun(
      eventOf(RunFailedSchema, {
        tenantId,
        plan: Plan.PRO,
        requestId: "run-3",
        reservationId: r.reservationId,
        usage: { cpuSeconds: 1, toolCalls: 1 },
        code: "UNAVAILABLE",
        reason: "DEPENDENCY_UNAVAILABLE",
        failedStep: "retrieve",
      }),
      tenantId,
      "run-3",
    );
    await eventually("the failed run's record", async () => (await summary(tenantId)).totals?.runsFailed === 1n);
    const s = await summary(tenantId);
    expect(s.totals).toMatchObject({ runsCompleted: 0n, runsFailed: 1n, runUnits: 0, cpuSeconds: 1 });
    expect(s.quota).toMatchObject({ runsUsed: 0n, runsReserved: 0n });
  });

  it("a run admitted without metering still counts, on the day it completed", async () => {
    const tenantId = uniqueTenant();
    await appendRun(completed(tenantId, "run-4", ""), tenantId, "run-4");
    await eventually("the usage record", async () => (await summary(tenantId)).totals?.runsCompleted === 1n);
    const today = new Date().toISOString().slice(0, 10);
    const h = await metering.handler.getUsageHistory(
      create(GetUsageHistoryRequestSchema, { startDate: today, endDate: today }),
      contextFor(tenantPrincipal(tenantId)),
    );
    expect(h.days[0]).toMatchObject({ date: today, totals: { runsCompleted: 1n, runUnits: 4 } });
    expect((await summary(tenantId)).quota).toMatchObject({ runsUsed: 1n, runUnitsUsed: 4 });
  });
});
