/**
 * The database that follows a failover's endpoint file, against two real PostgreSQL servers
 * of our own (tests/support/pg-cluster.ts): "east" and "west", each with a database `app`
 * holding a marker row that says which server it is.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../../../tests/support/eventually.js";
import { describeWithPostgresBinaries, type PgCluster, startPrimary } from "../../../tests/support/pg-cluster.js";
import { databaseUrlAt, endpointOfUrl, parseDatabaseEndpoint, readDatabaseEndpoint } from "./database-endpoint.js";
import { createFollowingDatabase, type FollowingDatabase } from "./following-database.js";
import { createPgDatabase } from "./pg-database.js";

describe("database endpoints", () => {
  it("parses host:port, bracketed IPv6, and says what is wrong otherwise", () => {
    expect(parseDatabaseEndpoint("pg.eu-west-1.internal:5432\n")).toEqual({ host: "pg.eu-west-1.internal", port: 5432 });
    expect(parseDatabaseEndpoint("[::1]:6432")).toEqual({ host: "[::1]", port: 6432 });
    expect(() => parseDatabaseEndpoint("pg.internal")).toThrow(/is not host:port/);
    expect(() => parseDatabaseEndpoint("pg.internal:70000")).toThrow(/port 70000, outside 1–65535/);
    expect(() => parseDatabaseEndpoint("pg_bad!:5432")).toThrow(/invalid host name/);
  });

  it("keeps user, password, database and options of DATABASE_URL and replaces only the address", () => {
    const url = "postgres://nexus:s3cret@pg.us-east-1.internal:5432/nexus?sslmode=require&host=/var/run/postgresql";
    const moved = new URL(databaseUrlAt(url, { host: "pg.eu-west-1.internal", port: 6543 }));
    expect(moved.username).toBe("nexus");
    expect(moved.password).toBe("s3cret");
    expect(moved.host).toBe("pg.eu-west-1.internal:6543");
    expect(moved.pathname).toBe("/nexus");
    expect(moved.searchParams.get("sslmode")).toBe("require");
    expect(moved.searchParams.has("host")).toBe(false);
    expect(endpointOfUrl("postgres://u@db.internal/x")).toEqual({ host: "db.internal", port: 5432 });
  });

  it("reads a missing or empty file as nothing said, and names the file when it holds garbage", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "nexus-endpoint-"));
    try {
      const file = path.join(dir, "databaseEndpoint");
      expect(await readDatabaseEndpoint(file)).toBeUndefined();
      writeFileSync(file, "  \n");
      expect(await readDatabaseEndpoint(file)).toBeUndefined();
      writeFileSync(file, "not an endpoint");
      await expect(readDatabaseEndpoint(file)).rejects.toThrow(new RegExp(`${file}: database endpoint "not an endpoint" is not host:port`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describeWithPostgresBinaries("following the endpoint file (two real PostgreSQL servers)", () => {
  let east: PgCluster;
  let west: PgCluster;
  let dir: string;
  let file: string;
  let db: FollowingDatabase | undefined;

  const which = async (d: FollowingDatabase) => (await d.query<{ name: string }>("SELECT name FROM marker")).rows[0]?.name;
  const follow = (pollMs = 60_000) =>
    createFollowingDatabase({
      url: east.url("app"),
      endpointFile: file,
      pollMs,
      drainMs: 5_000,
      open: (url) => createPgDatabase({ url, poolSize: 3 }),
    });

  beforeAll(async () => {
    [east, west] = await Promise.all([startPrimary(), startPrimary()]);
    for (const [server, name] of [
      [east, "east"],
      [west, "west"],
    ] as const) {
      await server.query("CREATE DATABASE app");
      await server.query(`CREATE TABLE marker (name text); INSERT INTO marker VALUES ('${name}')`, "app");
    }
    dir = mkdtempSync(path.join(tmpdir(), "nexus-follow-"));
    file = path.join(dir, "databaseEndpoint");
  }, 60_000);

  afterEach(async () => {
    await db?.close();
    db = undefined;
    rmSync(file, { force: true });
  });

  afterAll(async () => {
    await Promise.all([east?.destroy(), west?.destroy()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("uses DATABASE_URL's own address without a file, and the file's address when there is one", async () => {
    db = await follow();
    expect(db.endpoint()).toBe(east.endpoint);
    expect(await which(db)).toBe("east");
    await db.close();
    writeFileSync(file, west.endpoint);
    db = await follow();
    expect(db.endpoint()).toBe(west.endpoint);
    expect(await which(db)).toBe("west");
  });

  it("refuses to start on a malformed file, naming it", async () => {
    writeFileSync(file, "west");
    await expect(follow()).rejects.toThrow(new RegExp(`${file}: database endpoint "west" is not host:port`));
  });

  it("moves queries, transactions and LISTENs when the file changes; in-flight transactions finish where they began", async () => {
    db = await follow();
    const heard: string[] = [];
    await db.listen("nexus_test", (payload) => heard.push(payload));
    await db.query("NOTIFY nexus_test, 'from east'");
    await eventually("the east notification", () => heard.includes("from east"));

    // A transaction open on east when the switch happens commits on east.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const began = new Promise<void>((r) => (started = r));
    const inFlight = db.transaction(async (tx) => {
      await tx.query("INSERT INTO marker VALUES ('east, in flight')");
      started();
      await held;
    });
    await began;

    writeFileSync(file, west.endpoint);
    await db.refresh();
    expect(db.endpoint()).toBe(west.endpoint);
    expect(db.problem()).toBeUndefined();
    expect(await which(db)).toBe("west");
    // Listeners are woken once on the move (notifications during it are lost) …
    expect(heard).toContain("");
    release();
    await inFlight;
    expect((await east.query<{ n: number }>("SELECT count(*)::int AS n FROM marker WHERE name = 'east, in flight'", "app"))[0]!.n).toBe(1);

    // … and hear the new server from then on.
    await west.query("NOTIFY nexus_test, 'from west'", "app");
    await eventually("the west notification", () => heard.includes("from west"));
    await db.transaction(async (tx) => {
      await tx.query("INSERT INTO marker VALUES ('west, after')");
    });
    expect((await west.query<{ n: number }>("SELECT count(*)::int AS n FROM marker WHERE name = 'west, after'", "app"))[0]!.n).toBe(1);
  });

  it("stays put and reports why when the new endpoint cannot be reached, then moves once it can", async () => {
    db = await follow();
    writeFileSync(file, "127.0.0.1:1");
    await db.refresh();
    expect(db.endpoint()).toBe(east.endpoint);
    expect(db.problem()).toMatch(
      new RegExp(`cannot switch the database from ${east.endpoint} to 127.0.0.1:1 as ${file} asks: .*; retrying`),
    );
    expect(await which(db)).toBe("east");

    writeFileSync(file, "nonsense");
    await db.refresh();
    expect(db.problem()).toMatch(/is not host:port.*staying on/);
    expect(await which(db)).toBe("east");

    writeFileSync(file, west.endpoint);
    await db.refresh();
    expect(db.problem()).toBeUndefined();
    expect(await which(db)).toBe("west");
  });

  it("follows by itself at the poll interval", async () => {
    db = await follow(50);
    writeFileSync(file, west.endpoint);
    await eventually("the switch to west", () => db!.endpoint() === west.endpoint);
    expect(await which(db)).toBe("west");
  });
});
