import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { appendToStream, readAll, readStream } from "./event-store.js";
import { migratePlatform } from "./platform-migrations.js";
import { clearUpcasters, currentSchemaVersion, registerUpcaster, upcast } from "./upcasters.js";

/*
 * A shipment event whose shape changed twice: v1 `{ weight: "12kg" }` (a string), v2
 * `{ weightGrams: 12000 }`, v3 renamed the type and added `unit`. Events of the older shapes
 * are written first, as an earlier release did, then the upcasters are registered.
 */
const OLD = "test.v1.ParcelWeighed";
const NEW = "test.v1.ShipmentWeighed";

function registerSteps() {
  registerUpcaster({
    type: OLD,
    fromVersion: 1,
    upcast: (p) => ({ weightGrams: Number.parseFloat((p as { weight: string }).weight) * 1000 }),
  });
  registerUpcaster({ type: OLD, fromVersion: 2, toType: NEW, upcast: (p) => ({ ...(p as object), unit: "g" }) });
}

describeWithPostgres("upcasting on read (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 2 });
    await migratePlatform(db);
  });
  afterEach(() => clearUpcasters());
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  it("Given events stored in the v1 and v2 shapes, When read after the upcasters are registered, Then every reader sees the current shape", async () => {
    await db.transaction((tx) =>
      appendToStream(tx, "parcel-1", 0, [
        { type: OLD, topic: "test.parcel_weighed", payload: { weight: "12.5kg" } },
        { type: OLD, topic: "test.parcel_weighed", payload: { weightGrams: 300 }, metadata: { schemaVersion: "2" } },
      ]),
    );
    // Before registration the store hands back what was written.
    expect((await readStream(db, "parcel-1")).map((e) => e.payload)).toEqual([{ weight: "12.5kg" }, { weightGrams: 300 }]);

    registerSteps();
    expect(currentSchemaVersion(NEW)).toBe(3);
    const upgraded = await readStream(db, "parcel-1");
    expect(upgraded.map((e) => [e.type, e.payload, e.metadata.schemaVersion])).toEqual([
      [NEW, { weightGrams: 12500, unit: "g" }, "3"],
      [NEW, { weightGrams: 300, unit: "g" }, "3"],
    ]);
    expect((await readAll(db)).filter((e) => e.streamId === "parcel-1").map((e) => e.type)).toEqual([NEW, NEW]);

    // New events are stamped with the current version and pass through unchanged.
    const [fresh] = await db.transaction((tx) =>
      appendToStream(tx, "parcel-1", 2, [{ type: NEW, topic: "test.shipment_weighed", payload: { weightGrams: 1, unit: "g" } }]),
    );
    expect(fresh?.metadata.schemaVersion).toBe("3");
    expect((await readStream(db, "parcel-1", 3))[0]?.payload).toEqual({ weightGrams: 1, unit: "g" });
  });

  it("refuses a second, different upcaster for the same type and version", () => {
    registerSteps();
    expect(() => registerUpcaster({ type: OLD, fromVersion: 1, upcast: (p) => p })).toThrow(/already registered/);
    const same = { type: "x.v1.A", fromVersion: 1, upcast: (p: unknown) => p };
    registerUpcaster(same);
    expect(() => registerUpcaster(same)).not.toThrow();
  });

  it("leaves events of types without upcasters untouched (the same object)", () => {
    registerSteps();
    const e = {
      position: 1n,
      eventId: "e",
      streamId: "s",
      version: 1,
      type: "other.v1.Thing",
      topic: "other.thing",
      payload: {},
      metadata: {},
      occurredAt: new Date(),
    };
    expect(upcast(e)).toBe(e);
  });
});
