import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { NEXUS_BIN } from "../../../tests/support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { readStream } from "../events/event-store.js";
import { migratePlatform } from "../events/platform-migrations.js";
import { listSagas, runSaga, SAGA_EVENTS, type SagaDefinition, sagaStatus, sagaStreamId, startSaga, unfinishedSagas } from "./saga.js";
import { FIXTURE_STEPS, fixtureSaga, prepareFixture } from "./saga-fixture.js";
import { claimSagaLease, sagaLeaseHolder } from "./saga-lease.js";

/** The compiled fixture (vitest's global setup runs tsc first). */
const FIXTURE = path.resolve("dist/services/kernel/sagas/saga-fixture.js");
const instant = { sleep: async () => {} };

describeWithPostgres("saga runtime on the event store (PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await prepareFixture(db);
  });
  afterAll(async () => {
    await db?.close();
    await testDb?.drop();
  });

  async function effects(sagaId: string): Promise<string[]> {
    const { rows } = await db.query<{ step: string }>("SELECT step FROM saga_fixture.effects WHERE saga_id = $1 ORDER BY step", [sagaId]);
    return rows.map((r) => r.step);
  }

  /** Runs the fixture saga in a child process and SIGKILLs it once it prints `killAt`. */
  function runChildUntil(sagaId: string, failing: string, killAt: string): Promise<{ killed: boolean; output: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [FIXTURE, testDb.url, sagaId, failing], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      let killed = false;
      child.stdout.on("data", (d: Buffer) => {
        output += d.toString();
        if (!killed && output.split("\n").includes(killAt)) {
          killed = true;
          child.kill("SIGKILL");
        }
      });
      child.stderr.on("data", (d: Buffer) => {
        output += d.toString();
      });
      child.on("error", reject);
      child.on("exit", () => resolve({ killed, output }));
    });
  }

  for (const step of FIXTURE_STEPS) {
    it(`Given a saga whose process is SIGKILLed during step "${step}", When it is resumed, Then it completes with every step applied once`, async () => {
      const sagaId = `kill-run-${step}`;
      await startSaga(db, fixtureSaga(db, undefined), { sagaId, input: { order: "o-1" } });
      const child = await runChildUntil(sagaId, "-", `step ${step}`);
      expect(child.killed, child.output).toBe(true);
      expect((await sagaStatus(db, sagaId))?.inFlight).toBe(step);
      expect((await unfinishedSagas(db)).map((s) => s.sagaId)).toContain(sagaId);

      const final = await runSaga(db, fixtureSaga(db, undefined), sagaId, instant);
      expect(final.status).toBe("completed");
      expect(final.completed).toEqual([...FIXTURE_STEPS]);
      expect(await effects(sagaId)).toEqual([...FIXTURE_STEPS].sort());
      const events = await readStream(db, sagaStreamId(sagaId));
      const interrupted = events.filter((e) => e.type === SAGA_EVENTS.stepFailed);
      expect(interrupted.map((e) => (e.payload as { step: string }).step)).toEqual([step]);
      expect((await unfinishedSagas(db)).map((s) => s.sagaId)).not.toContain(sagaId);
    });
  }

  for (const step of ["reserve", "charge", "ship"]) {
    it(`Given a saga that fails at "ship" and is SIGKILLed while compensating "${step}", When it is resumed, Then it ends compensated with no effect left`, async () => {
      const sagaId = `kill-comp-${step}`;
      await startSaga(db, fixtureSaga(db, "ship"), { sagaId, input: { order: "o-2" } });
      const child = await runChildUntil(sagaId, "ship", `compensate ${step}`);
      expect(child.killed, child.output).toBe(true);
      expect((await sagaStatus(db, sagaId))?.status).toBe("compensating");

      const final = await runSaga(db, fixtureSaga(db, "ship"), sagaId, instant);
      expect(final.status).toBe("compensated");
      expect(final.compensated).toEqual(["ship", "charge", "reserve"]);
      expect(await effects(sagaId)).toEqual([]);
    });
  }

  it("Given a saga run to the end in its own process without a kill, Then it reports completed", async () => {
    const sagaId = "child-clean";
    await startSaga(db, fixtureSaga(db, undefined), { sagaId, input: { order: "o-3" } });
    const child = await runChildUntil(sagaId, "-", "never printed");
    expect(child.output).toContain("done completed");
    expect(await effects(sagaId)).toEqual([...FIXTURE_STEPS].sort());
  });

  it("Given a step that fails twice then succeeds within its attempts, Then the saga completes and records each failed attempt", async () => {
    let calls = 0;
    const def: SagaDefinition<null> = {
      name: "flaky",
      maxAttempts: 3,
      steps: [
        {
          name: "flaky",
          async run() {
            calls += 1;
            if (calls < 3) throw new Error(`attempt ${calls} refused`);
          },
        },
      ],
    };
    await startSaga(db, def, { sagaId: "flaky-1", input: null });
    const final = await runSaga(db, def, "flaky-1", instant);
    expect(final.status).toBe("completed");
    expect(final.attempts.flaky).toBe(3);
    const failed = (await readStream(db, sagaStreamId("flaky-1"))).filter((e) => e.type === SAGA_EVENTS.stepFailed);
    expect(failed.map((e) => (e.payload as { error: string }).error)).toEqual(["attempt 1 refused", "attempt 2 refused"]);
  });

  it("Given a step that hangs past the saga's deadline, Then the saga compensates the steps it started, newest first", async () => {
    const undone: string[] = [];
    const def: SagaDefinition<null> = {
      name: "slow",
      timeoutMs: 300,
      maxAttempts: 1,
      steps: [
        { name: "a", run: async () => {}, compensate: async () => void undone.push("a") },
        { name: "b", run: () => new Promise(() => {}), compensate: async () => void undone.push("b") },
      ],
    };
    await startSaga(db, def, { sagaId: "slow-1", input: null });
    const final = await runSaga(db, def, "slow-1", instant);
    expect(final.status).toBe("compensated");
    expect(final.reason).toMatch(/timeout|failed/);
    expect(final.lastError).toMatch(/deadline/);
    expect(undone).toEqual(["b", "a"]);
  });

  it("Given a saga past its point of no return, When a later step keeps failing, Then it is not compensated but ends failed for an operator", async () => {
    const undone: string[] = [];
    const def: SagaDefinition<null> = {
      name: "ponr",
      maxAttempts: 2,
      steps: [
        { name: "a", run: async () => {}, compensate: async () => void undone.push("a") },
        { name: "shred", pointOfNoReturn: true, run: async () => {} },
        {
          name: "delete",
          run: async () => {
            throw new Error("database is read-only");
          },
        },
      ],
    };
    await startSaga(db, def, { sagaId: "ponr-1", input: null });
    const final = await runSaga(db, def, "ponr-1", instant);
    expect(final.status).toBe("failed");
    expect(final.irreversible).toBe(true);
    expect(final.reason).toContain("database is read-only");
    expect(undone).toEqual([]);
  });

  it("Given a started saga, When it is started again or an unknown or malformed id is queried, Then the errors are ALREADY_EXISTS / undefined / INVALID_ARGUMENT", async () => {
    const def = fixtureSaga(db, undefined);
    await startSaga(db, def, { sagaId: "dup-1", input: { order: "x" } });
    await expect(startSaga(db, def, { sagaId: "dup-1", input: { order: "x" } })).rejects.toMatchObject({
      message: expect.stringContaining("already started"),
    });
    expect(await sagaStatus(db, "no-such-saga")).toBeUndefined();
    await expect(sagaStatus(db, "bad id with spaces")).rejects.toThrow(/saga id/);
  });

  it("Given two runners on one saga at once, Then each step is recorded once", async () => {
    const def = fixtureSaga(db, undefined);
    await startSaga(db, def, { sagaId: "race-1", input: { order: "r" } });
    await Promise.all([runSaga(db, def, "race-1", instant), runSaga(db, def, "race-1", instant)]);
    const final = await runSaga(db, def, "race-1", instant);
    expect(final.status).toBe("completed");
    const done = (await readStream(db, sagaStreamId("race-1"))).filter((e) => e.type === SAGA_EVENTS.stepCompleted);
    expect(done.map((e) => (e.payload as { step: string }).step)).toEqual([...FIXTURE_STEPS]);
  });

  it("Given runners with leases, Then one drives the saga at a time; a lapsed lease (a dead runner) is taken over, a released one at once", async () => {
    const def = fixtureSaga(db, undefined);
    await startSaga(db, def, { sagaId: "lease-1", input: { order: "l" } });
    // A runner that died holding the lease: another runner does not touch the saga until it lapses.
    expect(await claimSagaLease(db, "lease-1", { owner: "dead-runner", ttlMs: 1_500 })).toBe(true);
    const skipped = await runSaga(db, def, "lease-1", { ...instant, lease: { owner: "live-runner", ttlMs: 5_000 } });
    expect(skipped).toMatchObject({ status: "running", version: 1 });
    expect(await sagaLeaseHolder(db, "lease-1")).toMatchObject({ owner: "dead-runner" });
    const waited = await runSaga(db, def, "lease-1", { lease: { owner: "live-runner", ttlMs: 5_000, waitForLease: true } });
    expect(waited.status).toBe("completed");
    expect(await sagaLeaseHolder(db, "lease-1")).toBeUndefined();

    // Two live runners at once: exactly one runs the steps (each effect once, each step recorded once).
    const ran: string[] = [];
    const counted = fixtureSaga(db, undefined, async (what) => void ran.push(what));
    await startSaga(db, counted, { sagaId: "lease-2", input: { order: "m" } });
    await Promise.all(["r1", "r2"].map((owner) => runSaga(db, counted, "lease-2", { ...instant, lease: { owner, ttlMs: 5_000 } })));
    expect(ran).toEqual(FIXTURE_STEPS.map((step) => `step ${step}`));
    expect((await sagaStatus(db, "lease-2"))?.status).toBe("completed");
  });

  it("Given finished and interrupted sagas, When an operator runs `nexus sagas list` and `nexus sagas status`, Then they see each saga's status and steps", async () => {
    const def = fixtureSaga(db, "ship");
    await startSaga(db, def, { sagaId: "cli-comp", input: { order: "c" }, tenantId: "t-cli" });
    await runSaga(db, def, "cli-comp", instant);
    const listed = await listSagas(db, 1000);
    expect(listed.find((s) => s.sagaId === "cli-comp")).toMatchObject({ status: "compensated", tenantId: "t-cli", name: "fixture" });
    expect(listed.find((s) => s.sagaId === "kill-run-ship")).toMatchObject({ status: "completed" });

    const run = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
          env: { ...process.env, LOG_LEVEL: "warn", NATS_URL: undefined, DATABASE_URL: testDb.url },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        child.stderr.on("data", (c: Buffer) => (out += c.toString()));
        child.on("exit", (code) => resolve({ code, out }));
      });
    const list = await run(["sagas", "list", "--limit", "1000"]);
    expect(list.code, list.out).toBe(0);
    expect(list.out).toMatch(/cli-comp\s+fixture\s+compensated\s+t-cli/);
    const status = await run(["sagas", "status", "cli-comp", "--json"]);
    expect(status.code, status.out).toBe(0);
    expect(JSON.parse(status.out)).toMatchObject({
      status: "compensated",
      compensated: ["ship", "charge", "reserve"],
      completed: ["reserve", "charge"],
    });
    const missing = await run(["sagas", "status", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.out).toContain("no saga nope");
  });
});
