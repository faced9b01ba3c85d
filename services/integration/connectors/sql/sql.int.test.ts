/**
 * SQL destinations against the real servers of this machine: PostgreSQL :5432 (a scratch
 * database per run) and MariaDB :3306 (a scratch database and user per run, created as root over
 * the unix socket or, failing that, root@127.0.0.1 without password — how .ci/run sets it up).
 * Outages are made with a TCP relay of this suite on a port in 15500-15599 in front of the real
 * server: stopping it refuses and resets connections exactly as a server that went away does.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { type Connection, createConnection } from "mysql2/promise";
import pg from "pg";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../../../tests/support/eventually.js";
import { createTestDatabase, reachable, type TestDatabase } from "../../../../tests/support/services.js";
import { ConnectorError, type SqlConnection, type SqlDestination, type SqlWrite } from "../ports.js";
import { createSqlDestination } from "./index.js";

const REQUIRE = process.env.NEXUS_REQUIRE_SERVICES === "1";
const logger = pino({ level: "silent" });
const PG_URL = process.env.NEXUS_TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const MYSQL_SOCKET = "/run/mysqld/mysqld.sock";
const MYSQL_PORT = 3306;

/** A TCP relay to a real server that can be stopped (refuse + reset) and started again on the same port. */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  /** Most client connections open at the same time since the last reset. */
  maxConcurrent = 0;

  constructor(
    readonly port: number,
    private readonly target: number,
  ) {}

  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target, "127.0.0.1");
      this.sockets.add(client).add(upstream);
      this.maxConcurrent = Math.max(this.maxConcurrent, [...this.sockets].length / 2);
      client.pipe(upstream).pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on("error", drop).on("close", drop);
      upstream.on("error", drop).on("close", drop);
    });
    await new Promise<void>((resolve, reject) => server.once("error", reject).listen(this.port, "127.0.0.1", resolve));
    this.server = server;
  }

  /** The server "goes away": new connections are refused, open ones reset. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** How a suite reaches its scratch database as admin, and the destination's connection. */
interface Fixture {
  conn: SqlConnection;
  admin(sql: string, values?: unknown[]): Promise<Record<string, unknown>[]>;
  /** Column types of this engine for the shared test table. */
  ddl: { json: string; bool: string; ts: string; text: string };
  /** A login allowed one connection at a time (PostgreSQL CONNECTION LIMIT, MariaDB MAX_USER_CONNECTIONS). */
  oneConnectionUser(): Promise<{ user: string; password?: string; drop(): Promise<void> }>;
  drop(): Promise<void>;
}

async function postgresFixture(): Promise<Fixture> {
  const db: TestDatabase = await createTestDatabase("nexus_conn");
  const admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
  const url = new URL(PG_URL);
  return {
    conn: {
      engine: "postgres",
      host: url.hostname,
      port: Number(url.port || 5432),
      database: db.name,
      user: decodeURIComponent(url.username || "postgres"),
    },
    admin: async (sql, values) => (await admin.query(sql, values)).rows,
    ddl: { json: "jsonb", bool: "boolean", ts: "timestamptz", text: "varchar(64)" },
    async oneConnectionUser() {
      const user = `nx_lim_${randomBytes(5).toString("hex")}`;
      await admin.query(`CREATE ROLE ${user} LOGIN CONNECTION LIMIT 1`);
      return {
        user,
        drop: async () => {
          await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [user]);
          await admin.query(`DROP ROLE IF EXISTS ${user}`);
        },
      };
    },
    async drop() {
      await admin.end();
      await db.drop();
    },
  };
}

/** Root over the unix socket (Debian's default), else root@127.0.0.1 without password. */
async function mysqlRoot(): Promise<Connection> {
  try {
    return await createConnection({ socketPath: MYSQL_SOCKET, user: "root" });
  } catch {
    return await createConnection({ host: "127.0.0.1", port: MYSQL_PORT, user: "root" });
  }
}

async function mysqlFixture(): Promise<Fixture> {
  const token = randomBytes(5).toString("hex");
  const database = `nexus_conn_${token}`;
  const user = `nx_conn_${token}`;
  const password = `pw-${randomBytes(9).toString("hex")}`;
  const root = await mysqlRoot();
  await root.query(`CREATE DATABASE \`${database}\``);
  await root.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
  await root.query(`GRANT ALL ON \`${database}\`.* TO '${user}'@'%'`);
  await root.query(`USE \`${database}\``);
  return {
    conn: { engine: "mysql", host: "127.0.0.1", port: MYSQL_PORT, database, user, password },
    admin: async (sql, values) => {
      const [rows] = await root.query(sql, values);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    },
    ddl: { json: "json", bool: "boolean", ts: "datetime(3)", text: "varchar(64)" },
    async oneConnectionUser() {
      const limited = `nx_lim_${randomBytes(5).toString("hex")}`;
      const limitedPassword = `pw-${randomBytes(9).toString("hex")}`;
      await root.query(`CREATE USER '${limited}'@'%' IDENTIFIED BY '${limitedPassword}' WITH MAX_USER_CONNECTIONS 1`);
      await root.query(`GRANT ALL ON \`${database}\`.* TO '${limited}'@'%'`);
      return {
        user: limited,
        password: limitedPassword,
        drop: async () => void (await root.query(`DROP USER IF EXISTS '${limited}'@'%'`)),
      };
    },
    async drop() {
      await root.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await root.query(`DROP USER IF EXISTS '${user}'@'%'`);
      await root.end();
    },
  };
}

const postgresUp = await reachable(PG_URL, 5432);
const mysqlUp = await reachable("mysql://127.0.0.1:3306", MYSQL_PORT);
for (const [name, up] of [
  ["PostgreSQL", postgresUp],
  ["MariaDB", mysqlUp],
] as const) {
  if (!up && REQUIRE) throw new Error(`${name} is not reachable and NEXUS_REQUIRE_SERVICES=1: start it (.ci/run does)`);
  if (!up) console.warn(`[nexus tests] skipping the ${name} destination suite: nothing listens on its port`);
}

const engines = [
  { engine: "postgres" as const, up: postgresUp, fixture: postgresFixture, relayPort: 15510 },
  { engine: "mysql" as const, up: mysqlUp, fixture: mysqlFixture, relayPort: 15511 },
];

async function caught(promise: Promise<unknown>): Promise<ConnectorError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectorError);
    return err as ConnectorError;
  }
  throw new Error("expected the call to fail");
}

const readingMappings: SqlWrite["mappings"] = [
  { source: "id", column: "id", type: "integer" },
  { source: "device.name", column: "device", type: "string" },
  { source: "device.temp", column: "temp", type: "number" },
  { source: "at", column: "seen_at", type: "timestamp" },
  { source: "meta", column: "meta", type: "json" },
  { source: "on", column: "active", type: "boolean", default: false },
];

for (const { engine, up, fixture, relayPort } of engines) {
  describe.skipIf(!up)(`SQL destination on ${engine}`, () => {
    let f: Fixture;
    let dest: SqlDestination;

    beforeAll(async () => {
      f = await fixture();
      await f.admin(
        `CREATE TABLE readings (id integer PRIMARY KEY, device ${f.ddl.text} NOT NULL, temp double precision, seen_at ${f.ddl.ts}, meta ${f.ddl.json}, active ${f.ddl.bool})`,
      );
      dest = createSqlDestination(f.conn, { logger });
    });
    afterAll(async () => {
      await dest?.close();
      await f?.drop();
    });

    const insert: SqlWrite = { operation: "insert", table: "readings", mappings: readingMappings };
    const upsert: SqlWrite = { ...insert, operation: "upsert", keyColumns: ["id"] };

    it("tests the connection: latency and server version", async () => {
      const result = await dest.test();
      expect(result.latencyMs).toBeGreaterThanOrEqual(0);
      expect(result.serverVersion).toMatch(engine === "postgres" ? /^PostgreSQL \d+/ : /^(MariaDB|MySQL) \d+/);
    });

    it("inserts a mapped row with converted types", async () => {
      const out = await dest.execute(insert, {
        id: "1",
        device: { name: "pump-1", temp: "21.5" },
        at: "2026-12-06T05:00:00Z",
        meta: { fw: 2 },
        on: "yes",
      });
      expect(out.rowCount).toBe(1);
      const [row] = await f.admin("SELECT id, device, temp, seen_at, meta, active FROM readings WHERE id = 1");
      expect(row?.device).toBe("pump-1");
      expect(Number(row?.temp)).toBe(21.5);
      expect(new Date(row?.seen_at as string).toISOString()).toBe("2026-12-06T05:00:00.000Z");
      expect(typeof row?.meta === "string" ? JSON.parse(row.meta) : row?.meta).toEqual({ fw: 2 });
      expect(Boolean(row?.active)).toBe(true);
    });

    it("upserts on the key: the second write updates, one row stays", async () => {
      expect((await dest.execute(upsert, { id: 2, device: { name: "pump-2", temp: 10 } })).rowCount).toBe(1);
      expect((await dest.execute(upsert, { id: 2, device: { name: "pump-2", temp: 11 } })).rowCount).toBe(1);
      const rows = await f.admin("SELECT temp FROM readings WHERE id = 2");
      expect(rows.map((r) => Number(r.temp))).toEqual([11]);
    });

    it("partial update changes only the fields present in the input", async () => {
      await dest.execute(upsert, { id: 3, device: { name: "pump-3", temp: 1 }, on: true });
      const update: SqlWrite = { ...insert, operation: "update", keyColumns: ["id"], partial: true };
      expect((await dest.execute(update, { id: 3, device: { temp: 2 } })).rowCount).toBe(1);
      const [row] = await f.admin("SELECT device, temp, active FROM readings WHERE id = 3");
      expect(row?.device).toBe("pump-3");
      expect(Number(row?.temp)).toBe(2);
      expect(Boolean(row?.active)).toBe(true);
    });

    it("selects by key and deletes by key", async () => {
      await dest.execute(upsert, { id: 4, device: { name: "pump-4", temp: 4 } });
      const select: SqlWrite = {
        operation: "select",
        table: "readings",
        mappings: [{ source: "id", column: "id", type: "integer" }],
        keyColumns: ["id"],
      };
      const found = await dest.execute(select, { id: 4 });
      expect(found.rowCount).toBe(1);
      expect(found.rows?.[0]?.device).toBe("pump-4");
      const del: SqlWrite = { ...select, operation: "delete" };
      expect((await dest.execute(del, { id: 4 })).rowCount).toBe(1);
      expect((await dest.execute(del, { id: 4 })).rowCount).toBe(0);
      expect((await dest.execute(select, { id: 4 })).rows).toEqual([]);
    });

    it("a constraint violation, a NOT NULL violation and an unknown column are rejected, not retried", async () => {
      const duplicate = await caught(dest.execute(insert, { id: 1, device: { name: "again" } }));
      expect(duplicate).toMatchObject({ reason: "DESTINATION_REJECTED", retryable: false });
      expect(duplicate.message).toMatch(engine === "postgres" ? /duplicate key.*23505/ : /Duplicate entry.*ER_DUP_ENTRY/);
      const notNull = await caught(dest.execute(insert, { id: 50 }));
      expect(notNull).toMatchObject({ reason: "DESTINATION_REJECTED", retryable: false });
      const unknown = await caught(dest.execute({ ...insert, mappings: [{ source: "id", column: "nope" }] }, { id: 51 }));
      expect(unknown).toMatchObject({ reason: "DESTINATION_REJECTED", retryable: false });
      expect(unknown.message).toContain("nope");
    });

    it("a value that does not convert fails the mapping before any SQL", async () => {
      const err = await caught(dest.execute(insert, { id: "seven", device: { name: "x" } }));
      expect(err).toMatchObject({ reason: "MAPPING_FAILED", retryable: false });
      expect(err.message).toContain('field "id" (column "id") should be an integer but is a string');
    });

    it("refuses injection through the table name", async () => {
      const err = await caught(dest.execute({ ...insert, table: "readings; DROP TABLE readings" }, { id: 9, device: { name: "x" } }));
      expect(err.reason).toBe("INVALID_DESTINATION_CONFIG");
      expect((await f.admin("SELECT COUNT(*) AS n FROM readings"))[0]).toBeDefined();
    });

    it("browses tables and columns", async () => {
      const tables = await dest.listTables();
      expect(tables).toContainEqual({ schema: engine === "postgres" ? "public" : f.conn.database, name: "readings" });
      const columns = await dest.listColumns("readings");
      expect(columns.map((c) => c.name)).toEqual(["id", "device", "temp", "seen_at", "meta", "active"]);
      expect(columns.find((c) => c.name === "id")).toMatchObject({ primaryKey: true, nullable: false });
      expect(columns.find((c) => c.name === "device")).toMatchObject({ primaryKey: false, nullable: false });
      expect(columns.find((c) => c.name === "temp")).toMatchObject({ primaryKey: false, nullable: true });
      expect((await caught(dest.listColumns("no_such_table"))).reason).toBe("DESTINATION_REJECTED");
    });

    it("a server that is not there is retryable DESTINATION_UNAVAILABLE, without the password in the message", async () => {
      const down = createSqlDestination({ ...f.conn, port: 15599, password: "hunter2-secret", connectTimeoutMs: 1000 }, { logger });
      try {
        const err = await caught(down.execute(insert, { id: 60, device: { name: "x" } }));
        expect(err).toMatchObject({ reason: "DESTINATION_UNAVAILABLE", retryable: true });
        expect(err.message).toContain(`127.0.0.1:15599/${f.conn.database}`);
        expect(err.message).not.toContain("hunter2-secret");
        expect((await caught(down.test())).retryable).toBe(true);
      } finally {
        await down.close();
      }
    });

    it("wrong credentials or database are a configuration error, not retried", async () => {
      const wrong =
        engine === "mysql"
          ? createSqlDestination({ ...f.conn, password: "wrong-password-xyz" }, { logger })
          : createSqlDestination({ ...f.conn, database: `${f.conn.database}_missing` }, { logger });
      try {
        const err = await caught(wrong.test());
        expect(err).toMatchObject({ reason: "INVALID_DESTINATION_CONFIG", retryable: false });
        expect(err.message).not.toContain("wrong-password-xyz");
      } finally {
        await wrong.close();
      }
    });

    it("a server out of connections for this user is retryable DESTINATION_UNAVAILABLE", async () => {
      const limited = await f.oneConnectionUser();
      const conn = { ...f.conn, user: limited.user, password: limited.password };
      const first = createSqlDestination(conn, { logger });
      const second = createSqlDestination(conn, { logger });
      try {
        await first.test(); // holds the one connection (idle in its pool)
        const err = await caught(second.test());
        expect(err).toMatchObject({ reason: "DESTINATION_UNAVAILABLE", retryable: true });
        expect(err.message).toMatch(engine === "postgres" ? /too many connections.*53300/ : /max_user_connections.*ER_USER_LIMIT_REACHED/);
        await first.close();
        await eventually("the second gets the connection once the first let go", async () => Boolean(await second.test()), 10_000);
      } finally {
        await first.close();
        await second.close();
        await limited.drop();
      }
    });

    it("recovers by itself after the server went away and came back (the pool does not stay broken)", async () => {
      const relay = new Relay(relayPort, f.conn.port);
      await relay.start();
      const viaRelay = createSqlDestination({ ...f.conn, port: relayPort, connectTimeoutMs: 2000 }, { logger });
      try {
        await viaRelay.execute(upsert, { id: 70, device: { name: "before" } });
        await relay.stop();
        const err = await caught(viaRelay.execute(upsert, { id: 71, device: { name: "during" } }));
        expect(err).toMatchObject({ reason: "DESTINATION_UNAVAILABLE", retryable: true });
        await relay.start();
        // The pool may still hold a connection that broke while idle: the first call after the
        // outage may fail retryably once, never permanently.
        await eventually(
          "the destination writes again",
          async () => (await viaRelay.execute(upsert, { id: 72, device: { name: "after" } })).rowCount === 1,
          10_000,
        );
        const rows = await f.admin("SELECT id FROM readings WHERE id IN (70, 71, 72) ORDER BY id");
        expect(rows.map((r) => Number(r.id))).toEqual([70, 72]);
      } finally {
        await viaRelay.close();
        await relay.stop();
      }
    });

    it("never opens more than poolMax connections", async () => {
      const relay = new Relay(relayPort + 2, f.conn.port);
      await relay.start();
      const small = createSqlDestination({ ...f.conn, port: relayPort + 2, poolMax: 2 }, { logger });
      try {
        const writes = Array.from({ length: 20 }, (_, i) => small.execute(upsert, { id: 100 + i, device: { name: `d${i}` } }));
        const results = await Promise.all(writes);
        expect(results.every((r) => r.rowCount === 1)).toBe(true);
        expect(relay.maxConcurrent).toBeLessThanOrEqual(2);
        expect(Number((await f.admin("SELECT COUNT(*) AS n FROM readings WHERE id >= 100 AND id < 120"))[0]?.n)).toBe(20);
      } finally {
        await small.close();
        await relay.stop();
      }
    });

    it("an aborted write is retryable and leaves the pool usable", async () => {
      await dest.execute(upsert, { id: 80, device: { name: "locked" } });
      // Hold the row lock from another session so the write waits.
      const holder =
        engine === "postgres"
          ? new pg.Client({ host: f.conn.host, port: f.conn.port, user: f.conn.user, database: f.conn.database })
          : undefined;
      const mysqlHolder =
        engine === "mysql"
          ? await createConnection({
              host: f.conn.host,
              port: f.conn.port,
              user: f.conn.user,
              password: f.conn.password,
              database: f.conn.database,
            })
          : undefined;
      if (holder) {
        await holder.connect();
        await holder.query("BEGIN");
        await holder.query("SELECT * FROM readings WHERE id = 80 FOR UPDATE");
      } else if (mysqlHolder) {
        await mysqlHolder.query("BEGIN");
        await mysqlHolder.query("SELECT * FROM readings WHERE id = 80 FOR UPDATE");
      }
      try {
        const err = await caught(dest.execute(upsert, { id: 80, device: { name: "blocked" } }, { signal: AbortSignal.timeout(300) }));
        expect(err).toMatchObject({ reason: "DESTINATION_UNAVAILABLE", retryable: true });
        expect(err.message).toContain("cancelled");
      } finally {
        await holder?.query("ROLLBACK");
        await holder?.end();
        await mysqlHolder?.query("ROLLBACK");
        await mysqlHolder?.end();
      }
      expect((await dest.execute(upsert, { id: 81, device: { name: "next" } })).rowCount).toBe(1);
    });
  });
}
