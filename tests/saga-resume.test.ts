/**
 * A saga interrupted by a crash resumes in a fresh process without a manual command
 * (docs/event-sourcing.md, "Sagas"): `nexus tenants offboard` is SIGKILLed in the middle of
 * its `delete-data` step; a new `nexus serve --service auth,metering` (PostgreSQL + NATS)
 * takes the saga over once the dead runner's lease lapsed, finishes it, and GetSaga/ListSagas
 * show what happened — the interrupted attempt included.
 */
import { spawn } from "node:child_process";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SagaStatus, SagaStep_State } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { createPostgresAuthStore } from "../services/auth/adapters/postgres.js";
import { tenantAggregate } from "../services/auth/auth-aggregates.js";
import { authSettingsFromConfig } from "../services/auth/auth-settings.js";
import { createAuthApplication } from "../services/auth/create-auth-application.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { executeCommand } from "../services/kernel/commands/index.js";
import { loadConfig, SERVICE_NAMES } from "../services/kernel/config.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { migratePlatform } from "../services/kernel/events/platform-migrations.js";
import { newMasterKeyLine } from "../services/kernel/keyring/index.js";
import { sagaLeaseHolder, sagaStatus } from "../services/kernel/sagas/index.js";
import { migrateServices } from "../services/runtime/start-nexus.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { NEXUS_BIN, type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";
import { countTenantRows, KEPT_TABLES, seedTenantRows } from "./support/tenant-rows.js";

describeWithPostgresAndNats("a saga interrupted by a crash resumes in a fresh process", () => {
  let testDb: TestDatabase;
  let db: Database;
  let server: NexusProcess | undefined;
  const token = uniqueToken("sr").toUpperCase();
  const MASTER = newMasterKeyLine(1);
  const TENANT = "crash-tenant";
  const SAGA = "offboard-crash-1";

  beforeAll(async () => {
    testDb = await createTestDatabase("nexus_sagaresume");
    db = await createPgDatabase({ url: testDb.url, poolSize: 4 });
    await migratePlatform(db);
    await migrateServices(db, SERVICE_NAMES);
    const tenants = tenantAggregate(createPostgresAuthStore(db).tenants);
    await executeCommand(db, tenants, TENANT, {
      type: "CreateTenant",
      tenantId: TENANT,
      slug: TENANT,
      displayName: TENANT,
      plan: "free",
      now: new Date(),
    });
  });
  afterAll(async () => {
    await server?.stop();
    await db?.close();
    await testDb?.drop();
    await deleteSuiteStreams(token);
  });

  it("Given `nexus tenants offboard` killed -9 during delete-data, When a fresh server starts, Then it resumes the saga to completion and GetSaga shows the interrupted attempt", async () => {
    const seeded = await seedTenantRows(db, [TENANT]);
    expect(seeded.failed).toEqual({});

    // Hold the agent's sessions table: the CLI's delete-data step (auth, metering, audit and
    // knowledge deleted before it) waits there, in the middle of the step, until we kill it.
    const blocker = new pg.Client({ connectionString: testDb.url });
    await blocker.connect();
    await blocker.query("BEGIN");
    await blocker.query("LOCK TABLE agent.sessions IN ACCESS EXCLUSIVE MODE");

    const cli = spawn(process.execPath, [NEXUS_BIN, "tenants", "offboard", TENANT, "--reason", "contract ended", "--saga-id", SAGA], {
      env: {
        ...process.env,
        LOG_LEVEL: "warn",
        NATS_URL: undefined,
        DATABASE_URL: testDb.url,
        NEXUS_MASTER_KEYS: MASTER,
        NEXUS_SAGA_LEASE_MS: "2000",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let cliOut = "";
    cli.stdout.on("data", (c: Buffer) => (cliOut += c.toString()));
    cli.stderr.on("data", (c: Buffer) => (cliOut += c.toString()));
    const cliExit = new Promise<NodeJS.Signals | null>((resolve) => cli.once("exit", (_code, signal) => resolve(signal)));
    try {
      await eventually("the CLI inside delete-data", async () => (await sagaStatus(db, SAGA))?.inFlight === "delete-data", 60_000);
      expect(await sagaLeaseHolder(db, SAGA)).toBeDefined();
      cli.kill("SIGKILL");
      expect(await cliExit, cliOut).toBe("SIGKILL");
    } finally {
      await blocker.query("ROLLBACK");
      await blocker.end();
    }
    const interrupted = await sagaStatus(db, SAGA);
    expect(interrupted).toMatchObject({ status: "running", inFlight: "delete-data", irreversible: true });

    server = await startNexus({
      args: ["serve", "--service", "auth,metering", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: testDb.url,
        NATS_URL: TEST_NATS_URL,
        NEXUS_SUBJECT_PREFIX: uniqueToken("sr"),
        NEXUS_NATS_STREAM: suiteStreams(token).stream,
        NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
        NEXUS_MASTER_KEYS: MASTER,
        NEXUS_SAGA_LEASE_MS: "2000",
        OTEL_SDK_DISABLED: "true",
        LOG_LEVEL: "warn",
      },
    });
    const final = await eventually(
      "the saga resumed by the server",
      async () => {
        const s = await sagaStatus(db, SAGA);
        return s?.status === "completed" && s;
      },
      90_000,
    );
    expect(final.completed).toEqual(["suspend-keys", "stop-workflows", "check-legal-hold", "shred-keys", "delete-data"]);
    expect(final.errors.map((e) => [e.step, e.error])).toEqual([["delete-data", "interrupted (the runner stopped during the step)"]]);
    expect(await sagaLeaseHolder(db, SAGA)).toBeUndefined();
    const left = Object.entries(await countTenantRows(db, seeded.tables, TENANT)).filter(([, n]) => n > 0);
    expect(left.map(([t]) => t).sort()).toEqual([...KEPT_TABLES].sort());

    // A platform operator follows the offboarding over the API (the tenant's own keys are suspended).
    const config = loadConfig({ DATABASE_URL: testDb.url, LOG_LEVEL: "silent" });
    const auth = createAuthApplication({
      db,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      settings: authSettingsFromConfig(config),
    });
    const platform = await auth.issuePlatformKey("bootstrap", "saga test operator", undefined);
    const client = createNexusClient({ baseUrl: server.url, protocol: "grpc", apiKey: platform.plaintext, timeoutMs: 15_000 });
    const { saga } = await client.events.getSaga({ sagaId: SAGA });
    expect(saga).toMatchObject({
      sagaId: SAGA,
      name: "tenant-offboarding",
      status: SagaStatus.COMPLETED,
      tenantId: TENANT,
      pointOfNoReturnPassed: true,
    });
    expect(saga?.steps.map((s) => [s.name, s.state, s.attempts, s.pointOfNoReturn])).toEqual([
      ["suspend-keys", SagaStep_State.COMPLETED, 1, false],
      ["stop-workflows", SagaStep_State.COMPLETED, 1, false],
      ["check-legal-hold", SagaStep_State.COMPLETED, 1, false],
      ["shred-keys", SagaStep_State.COMPLETED, 1, true],
      ["delete-data", SagaStep_State.COMPLETED, 2, false],
    ]);
    expect(saga?.errors.map((e) => [e.step, e.attempt, e.compensation])).toEqual([["delete-data", 1, false]]);
    const listed = await client.events.listSagas({ name: "tenant-offboarding" });
    expect(listed.sagas.map((s) => [s.sagaId, s.status])).toEqual([[SAGA, SagaStatus.COMPLETED]]);
  }, 240_000);
});
