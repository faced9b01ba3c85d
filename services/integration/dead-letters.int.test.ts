/**
 * Deliveries that exhaust their retries go to the kernel's dead-letter queue, are listed for
 * their tenant only, and replay; the execution log streams live (PostgreSQL + NATS + HTTP receiver).
 */
import { create } from "@bufbuild/protobuf";
import { createContextValues, createHandlerContext } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  CreateDestinationRequestSchema,
  CreateWorkflowRequestSchema,
  ExecuteWorkflowRequestSchema,
  IntegrationService,
  ListDeadLettersRequestSchema,
  ListExecutionsRequestSchema,
  ReplayDeadLetterRequestSchema,
  TailExecutionsRequestSchema,
  type TailExecutionsResponse,
} from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { ExecutionStatus, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import {
  type Integration,
  integrationContext,
  integrationPrincipal,
  openIntegration,
  type Receiver,
  startReceiver,
} from "../../tests/support/integration-harness.js";
import { deleteSuiteStreams, suiteStreams } from "../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../tests/support/services.js";
import { principalKey } from "../kernel/context.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";

describeWithPostgresAndNats("integration dead letters and live tail (PostgreSQL + NATS)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let integ: Integration;
  let r: Receiver;
  const token = uniqueToken("dl").toUpperCase();
  const tenant = uniqueToken("tenant");
  const other = uniqueToken("other");
  const ctx = integrationContext(integrationPrincipal(tenant));
  const otherCtx = integrationContext(integrationPrincipal(other));
  const h = () => integ.parts.handler;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 8 });
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "integration-dlq-suite" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
      relay: { pollIntervalMs: 20 },
      consumerHeartbeatMs: 1_000,
    });
    integ = await openIntegration(db, bus, { NEXUS_INTEGRATION_MAX_RETRIES: "2" });
    r = await startReceiver(15411);
  }, 60_000);

  afterAll(async () => {
    await integ?.close();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
    await r?.close();
    await deleteSuiteStreams(token);
  });

  it("parks a delivery after its retries, shows it to its tenant only, replays it once the destination is back; the tail streams every change", async () => {
    const { destination } = await h().createDestination(
      create(CreateDestinationRequestSchema, {
        name: "flaky",
        config: { kind: { case: "rest", value: { url: r.url, timeoutMs: 1_000 } } },
      }),
      ctx,
    );
    const { workflow } = await h().createWorkflow(
      create(CreateWorkflowRequestSchema, {
        name: "to-flaky",
        definition: { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: destination!.destinationId, path: "/in" }] },
      }),
      ctx,
    );
    // The live tail, started before the message.
    const abort = new AbortController();
    const values = createContextValues();
    values.set(principalKey, integrationPrincipal(tenant));
    const tailCtx = createHandlerContext({
      service: IntegrationService,
      method: IntegrationService.method.tailExecutions,
      protocolName: "connect",
      requestMethod: "POST",
      url: "http://test.invalid/",
      contextValues: values,
      requestSignal: abort.signal,
    });
    const tailed: TailExecutionsResponse[] = [];
    const tail = (async () => {
      for await (const item of h().tailExecutions(create(TailExecutionsRequestSchema, { workflowId: workflow!.workflowId }), tailCtx))
        tailed.push(item as TailExecutionsResponse);
    })();

    r.status = 503;
    const { messageId } = await h().executeWorkflow(
      create(ExecuteWorkflowRequestSchema, { workflowId: workflow!.workflowId, payload: { n: 1 } }),
      ctx,
    );
    const parked = await eventually("dead-lettered", async () => {
      const { deadLetters } = await h().listDeadLetters(create(ListDeadLettersRequestSchema, {}), ctx);
      return deadLetters.find((d) => d.messageId === messageId);
    });
    expect(parked).toMatchObject({ workflowId: workflow!.workflowId, destinationId: destination!.destinationId, attempts: 3 });
    expect(parked.error).toMatch(/HTTP 503/);
    const log = await h().listExecutions(create(ListExecutionsRequestSchema, { messageId }), ctx);
    expect(log.executions[0]).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 3 });
    // Another tenant sees nothing and cannot replay it.
    expect((await h().listDeadLetters(create(ListDeadLettersRequestSchema, {}), otherCtx)).deadLetters).toEqual([]);
    await expect(h().replayDeadLetter(create(ReplayDeadLetterRequestSchema, { sequence: parked.sequence }), otherCtx)).rejects.toThrow(
      /no dead letter/,
    );

    r.status = 200;
    const replayed = await h().replayDeadLetter(create(ReplayDeadLetterRequestSchema, { sequence: parked.sequence }), ctx);
    expect(replayed).toMatchObject({ messageId, destinationId: destination!.destinationId });
    await eventually("delivered after replay", () => r.received.length === 1);
    await eventually("log says succeeded", async () => {
      const after = await h().listExecutions(create(ListExecutionsRequestSchema, { messageId }), ctx);
      return after.executions[0]?.status === ExecutionStatus.SUCCEEDED;
    });
    expect(
      (await h().listDeadLetters(create(ListDeadLettersRequestSchema, {}), ctx)).deadLetters.find((d) => d.messageId === messageId),
    ).toBeUndefined();

    try {
      // The tail polls (every 500 ms) and sends an entry's state as it is then: a state that
      // lasts less than a poll may be coalesced into the next (docs/integration.md). The parked
      // and the final state last.
      await eventually("tail saw the dead-lettered and the succeeded state", () => {
        const statuses = new Set(tailed.filter((t) => t.execution?.messageId === messageId).map((t) => t.execution?.status));
        return [ExecutionStatus.DEAD_LETTERED, ExecutionStatus.SUCCEEDED].every((s) => statuses.has(s));
      });
    } finally {
      abort.abort();
      await tail.catch(() => undefined);
    }
  }, 60_000);
});
