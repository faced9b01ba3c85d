import { randomBytes } from "node:crypto";
import net from "node:net";
import pg from "pg";
import { describe } from "vitest";

/** Admin connection used to create and drop per-suite databases (trust auth on 127.0.0.1). */
export const TEST_DATABASE_URL = process.env.NEXUS_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
/** NATS JetStream server used by integration suites. */
export const TEST_NATS_URL = process.env.NEXUS_TEST_NATS_URL ?? "nats://127.0.0.1:4222";

/** Set by .ci/run: a suite whose backing service is missing fails instead of skipping. */
const REQUIRE = process.env.NEXUS_REQUIRE_SERVICES === "1";

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || "127.0.0.1", port: Number(u.port || defaultPort) };
}

/** True when something accepts TCP connections at the URL's host and port. */
export function reachable(url: string, defaultPort: number, timeoutMs = 1000): Promise<boolean> {
  const { host, port } = hostPort(url, defaultPort);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

const postgresUp = await reachable(TEST_DATABASE_URL, 5432);
const natsUp = await reachable(TEST_NATS_URL, 4222);

function gate(name: string, up: boolean, what: string) {
  if (up) return describe;
  if (REQUIRE) {
    throw new Error(`${name} is not reachable at ${what} and NEXUS_REQUIRE_SERVICES=1: start it (see README, "Tests").`);
  }
  console.warn(`[nexus tests] skipping suites that need ${name}: nothing listens at ${what}`);
  return describe.skip;
}

/** `describe` for suites that need PostgreSQL; skips (or fails under NEXUS_REQUIRE_SERVICES=1) without it. */
export const describeWithPostgres = gate("PostgreSQL", postgresUp, TEST_DATABASE_URL);
/** `describe` for suites that need NATS JetStream. */
export const describeWithNats = gate("NATS", natsUp, TEST_NATS_URL);
/** `describe` for suites that need both. */
export const describeWithPostgresAndNats = postgresUp ? describeWithNats : describeWithPostgres;

/**
 * Whether the test PostgreSQL server offers pgvector (`vector` in pg_available_extensions).
 * CI installs it (scripts/install-pgvector.sh, run by .ci/run), so the PostgreSQL suites run
 * with vectors — the production path; under NEXUS_REQUIRE_SERVICES=1 a server without it fails
 * the run instead of silently testing lexical-only search.
 */
export const POSTGRES_HAS_VECTOR: boolean = await (async () => {
  if (!postgresUp) return false;
  const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
  try {
    await c.connect();
    const { rows } = await c.query<{ ok: boolean }>("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') AS ok");
    return rows[0]?.ok === true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
})();
if (postgresUp && !POSTGRES_HAS_VECTOR) {
  if (REQUIRE)
    throw new Error(`PostgreSQL at ${TEST_DATABASE_URL} has no pgvector and NEXUS_REQUIRE_SERVICES=1: run scripts/install-pgvector.sh`);
  console.warn("[nexus tests] the test PostgreSQL has no pgvector: its suites run lexical-only (scripts/install-pgvector.sh installs it)");
}
/** NEXUS_LEXICAL_ONLY for processes the suites start on the test PostgreSQL: "false" when it has pgvector. */
export const TEST_LEXICAL_ONLY = POSTGRES_HAS_VECTOR ? "false" : "true";

/** A throw-away database: created empty, dropped (with its connections) by `drop()`. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates a fresh database on the test server so each suite starts from nothing. */
export async function createTestDatabase(prefix = "nexus_test"): Promise<TestDatabase> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A unique, NATS-safe token for stream, consumer and subject names of one suite. */
export function uniqueToken(prefix = "t"): string {
  return `${prefix}${randomBytes(5).toString("hex")}`;
}
