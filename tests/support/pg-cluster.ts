import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { describe } from "vitest";

/**
 * Throw-away PostgreSQL servers of our own (initdb + pg_ctl from the machine's PostgreSQL
 * install), for tests that need more than the shared server gives: a primary with a real
 * streaming replica (pg_basebackup -R), to promote, pause and measure. Each listens on
 * 127.0.0.1 on a free port with trust auth and lives in a temporary directory.
 *
 * PostgreSQL refuses to run as root: as root the tools run as the `postgres` user (runuser).
 */

const run = promisify(execFile);

/** The directory of initdb/pg_ctl/pg_basebackup (the newest /usr/lib/postgresql/<v>/bin, or pg_config --bindir). */
export function postgresBinDir(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(path.join(root, v, "bin", "initdb")))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return path.join(root, versions[0], "bin");
  }
  try {
    const dir = execFileSync("pg_config", ["--bindir"], { encoding: "utf8" }).trim();
    return existsSync(path.join(dir, "initdb")) ? dir : undefined;
  } catch {
    return undefined;
  }
}

const BIN = postgresBinDir();
const AS_ROOT = process.getuid?.() === 0;

function owner(): { uid: number; gid: number } | undefined {
  if (!AS_ROOT) return undefined;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

/** `describe` for suites that start their own PostgreSQL servers; skips (or fails under NEXUS_REQUIRE_SERVICES=1) without initdb. */
export const describeWithPostgresBinaries = (() => {
  if (BIN) return describe;
  const what = "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup)";
  if (process.env.NEXUS_REQUIRE_SERVICES === "1") throw new Error(`${what} not found and NEXUS_REQUIRE_SERVICES=1: install postgresql`);
  console.warn(`[nexus tests] skipping suites that need ${what}: not found`);
  return describe.skip;
})();

async function tool(name: string, args: string[]): Promise<string> {
  if (!BIN) throw new Error("PostgreSQL binaries not found");
  const exe = path.join(BIN, name);
  const { stdout } = AS_ROOT ? await run("runuser", ["-u", "postgres", "--", exe, ...args]) : await run(exe, args);
  return stdout;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** One running server. */
export interface PgCluster {
  port: number;
  /** `127.0.0.1:<port>`, the form the failover flags use. */
  endpoint: string;
  /** URL of a database on it (default `postgres`). */
  url(database?: string): string;
  /** Runs one statement on a fresh connection and returns its rows. */
  query<T = Record<string, unknown>>(sql: string, database?: string): Promise<T[]>;
  /** Stops it at once and deletes its files. */
  destroy(): Promise<void>;
  /** Stops the server (`fast`: clients get 57P01; `immediate`: like a crash) and keeps its files. */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts it again on the same port and files (after {@link PgCluster.stop}). */
  start(): Promise<void>;
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const o = owner();
  if (o) chownSync(dir, o.uid, o.gid);
  return dir;
}

async function startServer(home: string, dataDir: string, port: number): Promise<PgCluster> {
  const options = `-p ${port} -k ${home} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off`;
  const start = () => tool("pg_ctl", ["-D", dataDir, "-o", options, "-l", path.join(home, "server.log"), "-w", "-t", "60", "start"]);
  await start();
  const url = (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`;
  return {
    port,
    endpoint: `127.0.0.1:${port}`,
    url,
    async query<T>(sql: string, database?: string): Promise<T[]> {
      const c = new pg.Client({ connectionString: url(database) });
      await c.connect();
      try {
        return (await c.query(sql)).rows as T[];
      } finally {
        await c.end();
      }
    },
    async stop(mode = "fast") {
      await tool("pg_ctl", ["-D", dataDir, "-m", mode, "-w", "stop"]);
    },
    async start() {
      await start();
    },
    async destroy() {
      await tool("pg_ctl", ["-D", dataDir, "-m", "immediate", "-w", "stop"]).catch(() => undefined);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** A new primary (initdb, trust auth, replication allowed from 127.0.0.1). */
export async function startPrimary(): Promise<PgCluster> {
  const home = tempDir("nexus-pg-primary-");
  const dataDir = path.join(home, "data");
  await tool("initdb", ["-D", dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
  return startServer(home, dataDir, await freePort());
}

/** A streaming replica of `primary` (pg_basebackup -R: standby.signal and primary_conninfo written). */
export async function startReplica(primary: PgCluster): Promise<PgCluster> {
  const home = tempDir("nexus-pg-replica-");
  const dataDir = path.join(home, "data");
  await tool("pg_basebackup", [
    "-h",
    "127.0.0.1",
    "-p",
    String(primary.port),
    "-U",
    "postgres",
    "-D",
    dataDir,
    "-R",
    "-X",
    "stream",
    "--checkpoint=fast",
    "--no-sync",
  ]);
  return startServer(home, dataDir, await freePort());
}
