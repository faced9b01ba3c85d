import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthListRequestSchema, HealthListResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { createPgliteDatabase } from "../services/kernel/db/pglite-database.js";
import { appendToStream, createLocalEventBus } from "../services/kernel/events/index.js";
import { grpcUnary } from "./support/grpc-js.js";
import { deleteSuiteStreams } from "./support/nats-streams.js";
import { NEXUS_BIN, startNexus, tempDir } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";

/** Runs `nexus <args>` to completion and returns its exit code and output. */
function runNexus(
  args: string[],
  env: Record<string, string | undefined> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", DATABASE_URL: undefined, NATS_URL: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("nexus CLI", () => {
  it("prints help listing its commands, and refuses unknown commands with exit 2", async () => {
    const help = await runNexus(["help"]);
    expect(help.code).toBe(0);
    for (const c of ["nexus dev", "nexus serve", "nexus migrate", "nexus dlq list", "nexus dlq replay"]) expect(help.stdout).toContain(c);
    const bad = await runNexus(["frobnicate"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
  });

  it("refuses to serve without DATABASE_URL and NATS_URL, naming both variables", async () => {
    const r = await runNexus(["serve", "--service", "auth"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("DATABASE_URL");
    expect(r.stderr).toContain("NATS_URL");
  });

  it("names a bad environment variable and what it expects", async () => {
    const r = await runNexus(["dev"], { NEXUS_PORT: "eighty" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/NEXUS_PORT="eighty" is invalid: expected/);
  });

  it("lists and replays dead letters of the embedded bus", { timeout: 120_000 }, async () => {
    const data = tempDir();
    try {
      // A consumer that always fails parks its event in the local DLQ after 5 deliveries.
      const db = await createPgliteDatabase({ dataDir: data.dir });
      const bus = await createLocalEventBus({ db, pollIntervalMs: 20 });
      await bus.start();
      const sub = await bus.subscribe({
        name: "cli-test-consumer",
        subject: "test.>",
        backoff: { initialMs: 5, maxMs: 20 },
        handler: async () => {
          throw new Error("downstream refused the event");
        },
      });
      await db.transaction((tx) =>
        appendToStream(tx, "cli-test-1", "no_stream", [{ type: "test.Thing", topic: "test.thing_happened", payload: { n: 1 } }]),
      );
      for (let i = 0; i < 400 && (await bus.deadLetters.depth()) === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(await bus.deadLetters.depth()).toBe(1);
      await sub.stop();
      await bus.close();
      await db.close();

      const list = await runNexus(["dlq", "list", "--json"], { NEXUS_DATA_DIR: data.dir });
      expect(list.code, list.stderr).toBe(0);
      const letters = JSON.parse(list.stdout) as Array<{ seq: number; consumer: string; error: string; deliveryCount: number }>;
      expect(letters).toHaveLength(1);
      expect(letters[0]).toMatchObject({ consumer: "cli-test-consumer", deliveryCount: 5 });
      expect(letters[0]?.error).toContain("downstream refused the event");

      const table = await runNexus(["dlq", "list"], { NEXUS_DATA_DIR: data.dir });
      expect(table.stdout).toMatch(/SEQ\s+CONSUMER/);

      const replay = await runNexus(["dlq", "replay", String(letters[0]?.seq)], { NEXUS_DATA_DIR: data.dir });
      expect(replay.code, replay.stderr).toBe(0);
      expect(replay.stdout).toContain("replayed");
      const after = await runNexus(["dlq", "list", "--json"], { NEXUS_DATA_DIR: data.dir });
      expect(JSON.parse(after.stdout)).toHaveLength(0);

      const missing = await runNexus(["dlq", "replay", "9999"], { NEXUS_DATA_DIR: data.dir });
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("not_found");
    } finally {
      data.remove();
    }
  });
});

describeWithPostgresAndNats("nexus serve and migrate against PostgreSQL and NATS", () => {
  let db: TestDatabase;
  const token = uniqueToken("cli");
  const env = () => ({
    DATABASE_URL: db.url,
    NATS_URL: TEST_NATS_URL,
    NEXUS_NATS_STREAM: `S_${token}`,
    NEXUS_DLQ_STREAM: `D_${token}`,
    NEXUS_SUBJECT_PREFIX: token,
  });
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await deleteSuiteStreams(token, [`S_${token}`, `D_${token}`]);
    await db?.drop();
  });

  it("migrates a fresh database once; a second run changes nothing", async () => {
    const first = await runNexus(["migrate"], env());
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("migrations applied (PostgreSQL)");
    const second = await runNexus(["migrate"], env());
    expect(second.code, second.stderr).toBe(0);
  });

  it("serves one service on its own, healthy, over gRPC", async () => {
    const p = await startNexus({ args: ["serve", "--service", "auth", "--port", "0", "--host", "127.0.0.1"], env: env() });
    try {
      const list = await grpcUnary(
        `127.0.0.1:${p.port}`,
        "/grpc.health.v1.Health/List",
        HealthListRequestSchema,
        HealthListResponseSchema,
        {},
      );
      expect(list.statuses["nexus.auth.v1.AuthService"]?.status).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(list.statuses["nexus.retrieval.v1.RetrievalService"]).toBeUndefined();
    } finally {
      expect(await p.stop()).toBe(0);
    }
  });
});
