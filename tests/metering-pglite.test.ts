/**
 * The embedded default (`nexus dev` without DATABASE_URL/NATS_URL): metering and the audit
 * trail on PGlite with the local bus — same modules, same SQL, one connection.
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AuditService,
  ExportAuditEventsRequestSchema,
  ListAuditEventsRequestSchema,
  VerifyAuditChainRequestSchema,
} from "../gen/nexus/audit/v1/audit_service_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { RunCompletedSchema } from "../gen/nexus/events/v1/agent_events_pb.js";
import { CheckQuotaRequestSchema, GetUsageSummaryRequestSchema } from "../gen/nexus/metering/v1/metering_service_pb.js";
import { Period } from "../gen/nexus/metering/v1/quota_pb.js";
import { entriesFromCsv } from "../services/audit/audit-csv.js";
import { createPgliteDatabase } from "../services/kernel/db/pglite-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { appendToStream } from "../services/kernel/events/event-store.js";
import { createLocalEventBus } from "../services/kernel/events/local-bus.js";
import type { EventBus } from "../services/kernel/events/ports.js";
import { eventOf } from "../services/kernel/events/protobuf-event.js";
import { eventually } from "./support/eventually.js";
import type { Audit, Metering } from "./support/metering-harness.js";
import { contextFor, openAudit, openMetering, tenantPrincipal, uniqueTenant } from "./support/metering-harness.js";
import { uniqueToken } from "./support/services.js";

describe("metering and audit on PGlite with the local bus", () => {
  let db: Database;
  let bus: EventBus;
  let metering: Metering;
  let audit: Audit;

  beforeAll(async () => {
    db = await createPgliteDatabase();
    bus = await createLocalEventBus({ db, subjectPrefix: uniqueToken("p"), pollIntervalMs: 25 });
    metering = await openMetering(db, bus);
    audit = await openAudit(db, bus);
  });

  afterAll(async () => {
    await audit?.module.shutdown?.();
    await metering?.module.shutdown?.();
    await bus?.close();
    await db?.close();
  });

  it("reserves, meters a completed run, and keeps a verifiable audit chain", async () => {
    const tenantId = uniqueTenant();
    const principal = tenantPrincipal(tenantId);
    const r = await metering.handler.checkQuota(create(CheckQuotaRequestSchema, { tenantId, requestId: "run-1" }), contextFor(principal));
    await db.transaction((tx) =>
      appendToStream(
        tx,
        "run-run-1",
        "any",
        [
          eventOf(RunCompletedSchema, {
            tenantId,
            plan: Plan.PRO,
            requestId: "run-1",
            reservationId: r.reservationId,
            usage: { cpuSeconds: 1.25, toolCalls: 1 },
            completedAt: timestampFromDate(new Date()),
          }),
        ],
        { metadata: { tenantId, actor: principal.keyId } },
      ),
    );
    const summary = await eventually("the usage", async () => {
      const s = await metering.handler.getUsageSummary(create(GetUsageSummaryRequestSchema, { period: Period.DAY }), contextFor(principal));
      return s.totals?.runsCompleted === 1n ? s : undefined;
    });
    expect(summary.totals?.runUnits).toBe(1.35);
    expect(summary.quota).toMatchObject({ runsUsed: 1n, runsReserved: 0n, runUnitsUsed: 1.35 });

    const ctx = contextFor(principal, AuditService);
    await eventually(
      "the usage audit entry",
      async () => (await audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {}), ctx)).events.length === 1,
    );
    const [entry] = (await audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {}), ctx)).events;
    expect(entry).toMatchObject({ eventType: "billing.usage_recorded", resource: { type: "run", id: "run-1" } });
    expect(entry?.metadata).toMatchObject({ run_units: 1.35, outcome: "completed" });
    expect((await audit.handler.verifyAuditChain(create(VerifyAuditChainRequestSchema, {}), ctx)).ok).toBe(true);
    let csv = "";
    for await (const piece of audit.handler.exportAuditEvents(create(ExportAuditEventsRequestSchema, {}), ctx))
      csv += new TextDecoder().decode(piece.data);
    expect(entriesFromCsv(csv, tenantId).map((e) => e.hash)).toEqual([entry?.hash]);
  });
});
