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
import { ExecutionStatus, FieldType, SqlEngine, SqlOperation, WorkflowKind } from "../../gen/nexus/integration/v1/resources_pb.js";
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
  let refusing: Receiver;
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
    refusing = await startReceiver(19203);
  }, 60_000);

  afterAll(async () => {
    await integ?.close();
    await bus?.close();
    await db?.close();
    await testDb?.drop();
    await r?.close();
    await refusing?.close();
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

    // Whatever fails below, the tail stops before the suite closes the database.
    try {
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
      // The execution entry is written by the consumer's onDeadLettered hook, which runs right
      // after the message is parked (kernel/events/ports.ts): a moment after the dead letter shows.
      const entry = await eventually("the execution entry says dead-lettered", async () => {
        const log = await h().listExecutions(create(ListExecutionsRequestSchema, { messageId }), ctx);
        return log.executions[0]?.status === ExecutionStatus.DEAD_LETTERED ? log.executions[0] : undefined;
      });
      expect(entry).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 3 });
      // Another tenant sees nothing and cannot replay it.
      expect((await h().listDeadLetters(create(ListDeadLettersRequestSchema, {}), otherCtx)).deadLetters).toEqual([]);
      await expect(h().replayDeadLetter(create(ReplayDeadLetterRequestSchema, { sequence: parked.sequence }), otherCtx)).rejects.toThrow(
        /no dead letter/,
      );

      // The tail polls (every 500 ms) and sends an entry's state as it is then: a state that lasts
      // less than a poll may be coalesced into the next (docs/integration.md). The parked state lasts
      // until the replay, so the tail must show it before the replay ends it.
      const tailStatuses = () => new Set(tailed.filter((t) => t.execution?.messageId === messageId).map((t) => t.execution?.status));
      await eventually("tail saw the dead-lettered state", () => tailStatuses().has(ExecutionStatus.DEAD_LETTERED));

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
      await eventually("tail saw the succeeded state", () => tailStatuses().has(ExecutionStatus.SUCCEEDED));
    } finally {
      abort.abort();
      await tail.catch(() => undefined);
    }
  }, 60_000);

  it("dead-letters a failure retrying cannot fix at once, and retries a transient one as often as its destination says", async () => {
    await db.exec("CREATE TABLE public.strict_rows (id text PRIMARY KEY, n integer NOT NULL CHECK (n > 0))");
    const url = new URL(testDb.url);
    const dest = async (name: string, config: unknown) =>
      (await h().createDestination(create(CreateDestinationRequestSchema, { name, config: config as never }), ctx)).destination!
        .destinationId;
    const refused = await dest("refuses", { kind: { case: "rest", value: { url: refusing.url, timeoutMs: 1_000 } } });
    // The installation allows 2 retries (3 deliveries); these destinations say otherwise.
    const once = await dest("once", { maxRetries: 0, kind: { case: "rest", value: { url: r.url, timeoutMs: 1_000 } } });
    const five = await dest("five", { maxRetries: 4, kind: { case: "rest", value: { url: r.url, timeoutMs: 1_000 } } });
    const pg = {
      kind: {
        case: "sql",
        value: {
          engine: SqlEngine.POSTGRES,
          host: url.hostname,
          port: Number(url.port || 5432),
          database: url.pathname.slice(1),
          user: url.username || "postgres",
        },
      },
    };
    const table = await dest("strict", pg);
    const typed = await dest("strict-typed", pg);
    const sql = (source: string) => ({
      operation: SqlOperation.INSERT,
      table: "strict_rows",
      mappings: [
        { source: "id", column: "id", type: FieldType.STRING },
        { source, column: "n", type: FieldType.NUMBER },
      ],
    });
    const { workflow } = await h().createWorkflow(
      create(CreateWorkflowRequestSchema, {
        name: "permanent-vs-transient",
        definition: {
          kind: WorkflowKind.FAN_OUT,
          targets: [
            { destinationId: refused, path: "/bad" },
            { destinationId: table, transform: '{"id": $messageId, "n": -1}', sql: sql("n") },
            { destinationId: typed, transform: '{"id": $messageId & "-t", "n": "not a number"}', sql: sql("n") },
            { destinationId: once, path: "/once" },
            { destinationId: five, path: "/five" },
          ],
        },
      }),
      ctx,
    );
    refusing.status = 400;
    r.status = 503;
    const { messageId } = await h().executeWorkflow(
      create(ExecuteWorkflowRequestSchema, { workflowId: workflow!.workflowId, payload: { n: 2 } }),
      ctx,
    );
    const parked = await eventually(
      "all five targets dead-lettered",
      async () => {
        const { deadLetters } = await h().listDeadLetters(create(ListDeadLettersRequestSchema, {}), ctx);
        const mine = deadLetters.filter((d) => d.messageId === messageId);
        return mine.length === 5 && mine;
      },
      60_000,
    );
    // The execution entries follow the dead letters (the consumer's onDeadLettered hook runs
    // just after parking, kernel/events/ports.ts), as in the test above: wait for all five.
    const log = await eventually("all five execution entries say dead-lettered", async () => {
      const l = await h().listExecutions(create(ListExecutionsRequestSchema, { messageId }), ctx);
      const dead = l.executions.filter((e) => e.status === ExecutionStatus.DEAD_LETTERED);
      return new Set(dead.map((e) => e.destinationId)).size === 5 && l;
    });
    const byDestination = new Map(log.executions.map((e) => [e.destinationId, e]));
    // Permanent: the 400, the constraint violation, the value that is not a number — one attempt each.
    expect(byDestination.get(refused)).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 1 });
    expect(byDestination.get(refused)?.error).toMatch(/400/);
    expect(byDestination.get(table)).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 1 });
    expect(byDestination.get(table)?.error).toMatch(/constraint|check/i);
    expect(byDestination.get(typed)).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 1 });
    // Transient: as many deliveries as each destination's max retries + 1.
    expect(byDestination.get(once)).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 1 });
    expect(byDestination.get(five)).toMatchObject({ status: ExecutionStatus.DEAD_LETTERED, attempts: 5 });
    expect(parked.map((d) => d.attempts).sort()).toEqual([1, 1, 1, 1, 5]);
    expect(refusing.received).toHaveLength(0);
  }, 90_000);
});
