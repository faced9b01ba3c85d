/**
 * Integration in the embedded mode `nexus dev` uses without DATABASE_URL / NATS_URL: PGlite and
 * the local bus. A fan-out workflow and a sequential one deliver to a local HTTP receiver; a
 * receiver that is down for a while catches up.
 */
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  CreateDestinationRequestSchema,
  CreateSenderAppRequestSchema,
  CreateWorkflowRequestSchema,
  ExecuteWorkflowRequestSchema,
  ListExecutionsRequestSchema,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { ExecutionStatus, StepType, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import {
  type Integration,
  integrationContext,
  integrationPrincipal,
  openIntegration,
  type Receiver,
  startReceiver,
} from "../../tests/support/integration-harness.js";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import { createLocalEventBus } from "../kernel/events/local-bus.js";
import type { EventBus } from "../kernel/events/ports.js";

let db: Database;
let bus: EventBus;
let integ: Integration;
let r: Receiver;
const ctx = integrationContext(integrationPrincipal("embedded-tenant"));

beforeAll(async () => {
  db = await createPgliteDatabase();
  bus = await createLocalEventBus({ db, pollIntervalMs: 50 });
  integ = await openIntegration(db, bus, { NEXUS_INTEGRATION_MAX_RETRIES: "30" });
  r = await startReceiver(15440);
}, 60_000);

afterAll(async () => {
  await integ?.close();
  await bus?.close();
  await db?.close();
  await r?.close();
});

it("delivers fan-out and sequential workflows on PGlite and the local bus, catching up after an outage", async () => {
  const h = integ.parts.handler;
  const { app, appKey } = await h.createSenderApp(create(CreateSenderAppRequestSchema, { name: "embedded" }), ctx);
  const { destination } = await h.createDestination(
    create(CreateDestinationRequestSchema, { name: "rx", config: { kind: { case: "rest", value: { url: r.url } } } }),
    ctx,
  );
  await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "fan",
      definition: {
        kind: WorkflowKind.FAN_OUT,
        source: { appId: app!.appId },
        targets: [{ destinationId: destination!.destinationId, path: "/fan" }],
      },
    }),
    ctx,
  );
  const { workflow: seq } = await h.createWorkflow(
    create(CreateWorkflowRequestSchema, {
      name: "seq",
      definition: {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [
          { name: "double", type: StepType.TRANSFORM, expression: '{"v": v * 2}' },
          { name: "post", type: StepType.REST_CALL, target: { destinationId: destination!.destinationId, path: "/seq" } },
        ],
      },
    }),
    ctx,
  );
  await r.down();
  for (let i = 0; i < 5; i++) {
    const res = await fetch(`${integ.httpUrl}/ingress`, { method: "POST", headers: { "x-api-key": appKey }, body: JSON.stringify({ i }) });
    expect(res.status).toBe(202);
  }
  await new Promise((res) => setTimeout(res, 800));
  await r.up();
  await eventually("fan-out caught up", () => r.received.filter((x) => x.path === "/fan").length === 5, 30_000);
  await h.executeWorkflow(create(ExecuteWorkflowRequestSchema, { workflowId: seq!.workflowId, payload: { v: 21 } }), ctx);
  await eventually("sequential ran", () => r.received.find((x) => x.path === "/seq"), 30_000);
  expect(r.received.filter((x) => x.path === "/seq").map((x) => x.body)).toEqual([{ v: 42 }]);
  expect(new Set(r.received.filter((x) => x.path === "/fan").map((x) => JSON.stringify(x.body))).size).toBe(5);
  const log = await h.listExecutions(create(ListExecutionsRequestSchema, { workflowId: seq!.workflowId }), ctx);
  expect(log.executions.map((e) => e.status)).toEqual([ExecutionStatus.SUCCEEDED, ExecutionStatus.SUCCEEDED]);
}, 90_000);
