import { createFileRegistry, fromBinary, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { appendToStream, readStream } from "../kernel/events/event-store.js";
import { migratePlatform } from "../kernel/events/platform-migrations.js";
import { foldSaga, runSaga, SAGA_EVENTS, type SagaDefinition, sagaStatus, sagaStreamId, startSaga } from "../kernel/sagas/index.js";
import { eventCatalogue, eventDescriptorSet } from "./event-types.js";

/** A registry built only from what ListEventTypes hands out (no generated code). */
function catalogueRegistry() {
  return createFileRegistry(fromBinary(FileDescriptorSetSchema, eventDescriptorSet()));
}

/** Two steps, the second failing once, and one compensable: every kind of saga event but the end ones. */
const def: SagaDefinition<{ tenantId: string; reason: string }> = {
  name: "typed-saga",
  maxAttempts: 2,
  retryDelayMs: 1,
  steps: [
    { name: "first", run: async () => {}, compensate: async () => {} },
    {
      name: "second",
      run: async ({ attempt }) => {
        if (attempt === 1) throw new Error("flaky once");
      },
      pointOfNoReturn: true,
    },
  ],
};

describeWithPostgres("saga events have protobuf descriptors (ListEventTypes, reflection)", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 2 });
    await migratePlatform(db);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("Given the event catalogue, Then every saga event type is listed with its saga.* topic and proto file", () => {
    const sagas = eventCatalogue().filter((t) => t.typeName.startsWith("nexus.sagas.v1."));
    expect(sagas.map((t) => t.typeName).sort()).toEqual(Object.values(SAGA_EVENTS).sort());
    expect(sagas.find((t) => t.typeName === SAGA_EVENTS.started)).toMatchObject({
      topic: "saga.started",
      schemaVersion: 1,
      protoFile: "nexus/sagas/v1/saga_events.proto",
    });
    expect(sagas.find((t) => t.typeName === SAGA_EVENTS.stepCompensated)?.topic).toBe("saga.step_compensated");
  });

  it("Given a saga run by the runtime, When its stored events are decoded strictly with the catalogue's descriptors, Then every one decodes and round-trips to the stored JSON", async () => {
    await startSaga(db, def, { sagaId: "typed-1", input: { tenantId: "t1", reason: "why" }, tenantId: "t1" });
    expect((await runSaga(db, def, "typed-1", { sleep: async () => {} })).status).toBe("completed");
    const registry = catalogueRegistry();
    const events = await readStream(db, sagaStreamId("typed-1"));
    expect(new Set(events.map((e) => e.type))).toEqual(
      new Set([SAGA_EVENTS.started, SAGA_EVENTS.stepStarted, SAGA_EVENTS.stepCompleted, SAGA_EVENTS.stepFailed, SAGA_EVENTS.completed]),
    );
    for (const e of events) {
      const schema = registry.getMessage(e.type);
      expect(schema, e.type).toBeDefined();
      // Strict: an unknown field name in the stored JSON would throw.
      const message = fromJson(schema!, e.payload as JsonValue, { registry });
      expect(normalized(toJson(schema!, message, { registry })), e.type).toEqual(normalized(e.payload));
    }
    const started = fromJson(registry.getMessage(SAGA_EVENTS.started)!, events[0]!.payload as JsonValue, { registry });
    expect(toJson(registry.getMessage(SAGA_EVENTS.started)!, started, { registry })).toMatchObject({
      sagaId: "typed-1",
      name: "typed-saga",
      input: { tenantId: "t1", reason: "why" },
      tenantId: "t1",
    });
  });

  it("Given saga events stored in the old JSON shape (before the descriptors existed), When they are read, Then they decode with the descriptors and the saga still folds", async () => {
    // Written as an earlier release did: plain JSON, no schema version, written by hand here.
    const stream = sagaStreamId("legacy-1");
    const raw = (type: string, payload: Record<string, unknown>) => ({ type, payload, topic: `saga.${type.split(".").pop()}` });
    await db.transaction((tx) =>
      appendToStream(
        tx,
        stream,
        "no_stream",
        [
          raw(SAGA_EVENTS.started, {
            sagaId: "legacy-1",
            name: "tenant-offboarding",
            input: { tenantId: "old", reason: "contract ended" },
            tenantId: "old",
            deadline: "2026-01-01T00:10:00.000Z",
          }),
          raw(SAGA_EVENTS.stepStarted, { sagaId: "legacy-1", step: "suspend-keys", attempt: 1 }),
          raw(SAGA_EVENTS.stepFailed, {
            sagaId: "legacy-1",
            step: "suspend-keys",
            error: "interrupted (the runner stopped during the step)",
          }),
          raw(SAGA_EVENTS.stepStarted, { sagaId: "legacy-1", step: "suspend-keys", attempt: 2 }),
          raw(SAGA_EVENTS.stepCompleted, { sagaId: "legacy-1", step: "suspend-keys", pointOfNoReturn: false }),
          raw(SAGA_EVENTS.compensationStarted, { sagaId: "legacy-1", reason: "step x failed 3 times: boom" }),
          raw(SAGA_EVENTS.compensationStepStarted, { sagaId: "legacy-1", step: "suspend-keys", attempt: 1 }),
          raw(SAGA_EVENTS.compensationFailed, { sagaId: "legacy-1", step: "suspend-keys", attempt: 1, error: "nope" }),
          raw(SAGA_EVENTS.stepCompensated, { sagaId: "legacy-1", step: "suspend-keys", skipped: false }),
          raw(SAGA_EVENTS.compensated, { sagaId: "legacy-1" }),
        ],
        { metadata: { tenantId: "old" } },
      ),
    );
    const registry = catalogueRegistry();
    const events = await readStream(db, stream);
    for (const e of events) {
      const schema = registry.getMessage(e.type)!;
      expect(normalized(toJson(schema, fromJson(schema, e.payload as JsonValue, { registry }), { registry })), e.type).toEqual(
        normalized(e.payload),
      );
    }
    const folded = foldSaga(events);
    expect(folded).toMatchObject({ status: "compensated", tenantId: "old", compensated: ["suspend-keys"] });
    expect(folded?.errors.map((x) => [x.step, x.attempt, x.compensation])).toEqual([
      ["suspend-keys", 1, false],
      ["suspend-keys", 1, true],
    ]);
    expect((await sagaStatus(db, "legacy-1"))?.deadline.toISOString()).toBe("2026-01-01T00:10:00.000Z");
  });
});

/**
 * A payload as canonical protobuf JSON writes it: default values (false, 0, "") left out, the
 * deadline as an instant (protobuf JSON drops ".000").
 */
function normalized(payload: unknown): unknown {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(payload as Record<string, unknown>)) {
    if (v === false || v === 0 || v === "") continue;
    out[k] = k === "deadline" ? new Date(String(v)).getTime() : v;
  }
  return out;
}
