/**
 * The billing webhook against a local STAND-IN billing receiver (a plain node:http server in
 * this file, standing in for a customer's billing system): quota events are POSTed signed
 * (HMAC-SHA256 over timestamp + "." + body), retried by the bus with backoff while the
 * receiver fails, with the same delivery id on every attempt, and dead-lettered after the
 * last attempt. Runs go through CheckQuota without waiting for any of it.
 */

import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { TenantCreatedSchema } from "../../gen/nexus/events/v1/auth_events_pb.js";
import { CheckQuotaRequestSchema, SetQuotaRequestSchema } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import type { Metering } from "../../tests/support/metering-harness.js";
import { contextFor, openMetering, platformPrincipal, tenantPrincipal, uniqueTenant } from "../../tests/support/metering-harness.js";
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
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { BILLING_WEBHOOK_CONSUMER, verifyWebhookSignature, WEBHOOK_HEADERS } from "./billing-webhook.js";
import { DEFAULT_METERING_SETTINGS } from "./metering-settings.js";

/** What the stand-in receiver saw. */
interface Delivery {
  headers: IncomingHttpHeaders;
  body: string;
}

const SECRET = "whsec_test_only_0123456789";

describeWithPostgresAndNats("billing webhook (stand-in receiver, PostgreSQL + NATS)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let metering: Metering;
  let receiver: Server;
  const token = uniqueToken("w").toUpperCase();
  const deliveries: Delivery[] = [];
  /** Tenants whose deliveries the stand-in refuses (HTTP 503) this many more times; -1 = always. */
  const failures = new Map<string, number>();

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        deliveries.push({ headers: req.headers, body });
        const tenant = (JSON.parse(body) as { tenant_id: string }).tenant_id;
        const left = failures.get(tenant) ?? 0;
        if (left !== 0) {
          failures.set(tenant, left - 1);
          res.writeHead(503).end("stand-in receiver: try again later");
          return;
        }
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/billing`;

    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "billing-webhook-suite" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
      relay: { pollIntervalMs: 50 },
      consumerHeartbeatMs: 1_000,
    });
    metering = await openMetering(db, bus, undefined, {
      settings: { ...DEFAULT_METERING_SETTINGS, billingWebhook: { url, secret: SECRET, timeoutMs: 2_000 } },
      backoff: { initialMs: 50, maxMs: 200 },
      maxDeliver: 4,
    });
  });

  afterAll(async () => {
    await metering?.module.shutdown?.();
    await bus?.close();
    await deleteSuiteStreams(token);
    await db?.close();
    await testDb?.drop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  /** A tenant with a daily limit of 2 runs and a soft cap at 50%. */
  async function limitedTenant(): Promise<string> {
    const tenantId = uniqueTenant();
    await db.transaction((tx) =>
      appendToStream(
        tx,
        `tenant-${tenantId}`,
        "no_stream",
        [eventOf(TenantCreatedSchema, { tenantId, slug: tenantId, displayName: tenantId, plan: Plan.PRO })],
        {
          metadata: { tenantId, actor: "key-platform" },
        },
      ),
    );
    await eventually(
      "the plan projection",
      async () => (await db.query("SELECT 1 FROM metering.tenant_plans WHERE tenant_id = $1", [tenantId])).rows.length === 1,
    );
    await metering.handler.setQuota(
      create(SetQuotaRequestSchema, { tenantId, dailyRunsLimit: 2n, softCapRatio: 0.5 }),
      contextFor(platformPrincipal()),
    );
    return tenantId;
  }

  const of = (tenantId: string) => deliveries.filter((d) => (JSON.parse(d.body) as { tenant_id: string }).tenant_id === tenantId);

  it("retries a refused delivery with the same delivery id and a fresh valid signature each time", async () => {
    const tenantId = await limitedTenant();
    failures.set(tenantId, 2);
    const ctx = contextFor(tenantPrincipal(tenantId));
    // The run is admitted at once; the webhook works behind the bus.
    await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "r1" }), ctx);
    await eventually("the third attempt", () => of(tenantId).length >= 3);
    const attempts = of(tenantId);
    expect(attempts).toHaveLength(3);
    const ids = new Set(attempts.map((a) => a.headers[WEBHOOK_HEADERS.delivery]));
    expect(ids.size).toBe(1);
    expect(attempts.map((a) => a.headers[WEBHOOK_HEADERS.attempt])).toEqual(["1", "2", "3"]);
    for (const a of attempts) {
      expect(a.headers[WEBHOOK_HEADERS.event]).toBe("quota.soft_cap_reached");
      const ok = verifyWebhookSignature({
        secret: SECRET,
        body: a.body,
        timestamp: a.headers[WEBHOOK_HEADERS.timestamp] as string,
        signature: a.headers[WEBHOOK_HEADERS.signature] as string,
      });
      expect(ok).toBe(true);
      expect(
        verifyWebhookSignature({
          secret: "wrong",
          body: a.body,
          timestamp: a.headers[WEBHOOK_HEADERS.timestamp] as string,
          signature: a.headers[WEBHOOK_HEADERS.signature] as string,
        }),
      ).toBe(false);
      // Replay protection: an old timestamp fails even with a correct signature.
      expect(
        verifyWebhookSignature({
          secret: SECRET,
          body: a.body,
          timestamp: a.headers[WEBHOOK_HEADERS.timestamp] as string,
          signature: a.headers[WEBHOOK_HEADERS.signature] as string,
          now: new Date(Date.now() + 3_600_000),
        }),
      ).toBe(false);
    }
    expect(attempts.every((a) => a.body === attempts[0]!.body)).toBe(true);
    const body = JSON.parse(attempts[0]!.body) as Record<string, unknown>;
    expect(body).toMatchObject({
      id: ids.values().next().value,
      type: "quota.soft_cap_reached",
      tenant_id: tenantId,
      data: { tenantId, limit: 2, used: 1 },
    });

    // A refusal at the hard cap is delivered too (the receiver accepts now: one attempt).
    await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "r2" }), ctx);
    await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "r3" }), ctx).catch(() => undefined);
    await eventually("the hard-cap delivery", () =>
      of(tenantId).some((d) => d.headers[WEBHOOK_HEADERS.event] === "quota.hard_cap_blocked"),
    );
    expect(of(tenantId).filter((d) => d.headers[WEBHOOK_HEADERS.event] === "quota.hard_cap_blocked")).toHaveLength(1);
  });

  it("parks a delivery the receiver keeps refusing in the dead-letter queue, without blocking runs", async () => {
    const tenantId = await limitedTenant();
    failures.set(tenantId, -1);
    const r = await metering.handler.checkQuota(
      create(CheckQuotaRequestSchema, { tenantId, requestId: "d1" }),
      contextFor(tenantPrincipal(tenantId)),
    );
    expect(r.reservationId).not.toBe("");
    const parked = await eventually("the dead letter", async () => {
      const letters = await bus.deadLetters.list({ consumer: BILLING_WEBHOOK_CONSUMER });
      return letters.find((l) => (l.metadata.tenantId ?? "") === tenantId);
    });
    expect(parked.error).toBe("billing webhook answered HTTP 503");
    expect(parked.deliveryCount).toBe(4);
    expect(of(tenantId)).toHaveLength(4);
    // The secret never reaches the dead letter.
    expect(JSON.stringify(parked)).not.toContain(SECRET);
  });
});
