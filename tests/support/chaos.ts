import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { describe } from "vitest";
import { createNexusClient, type NexusClient } from "../../services/client/index.js";
import { errorReason } from "../../services/kernel/errors.js";
import { eventually } from "./eventually.js";
import { type NexusProcess, startNexus } from "./nexus-process.js";
import { type PgCluster, postgresBinDir, startPrimary } from "./pg-cluster.js";

/**
 * Fault-injection helpers of the chaos suites (tests/chaos-*.test.ts): a PostgreSQL server and
 * a nats-server of the suite's own (never the shared ones, which other suites use), that the
 * test stops, kills, wipes and restarts, and `nexus dev` running against both.
 */

export const NATS_BIN = "/usr/sbin/nats-server";

/** `describe` for the chaos suites: needs initdb/pg_ctl and nats-server; skips (or fails under NEXUS_REQUIRE_SERVICES=1) without. */
export const describeChaos = (() => {
  const missing = [
    postgresBinDir() ? undefined : "PostgreSQL server binaries (initdb, pg_ctl)",
    existsSync(NATS_BIN) ? undefined : NATS_BIN,
  ].filter(Boolean);
  if (missing.length === 0) return describe;
  if (process.env.NEXUS_REQUIRE_SERVICES === "1") throw new Error(`${missing.join(" and ")} not found and NEXUS_REQUIRE_SERVICES=1`);
  console.warn(`[nexus tests] skipping the chaos suites: ${missing.join(" and ")} not found`);
  return describe.skip;
})();

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(200, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** A nats-server of the suite: same port and store directory across restarts. */
export class ThrowawayNats {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  /** `port`: one of the suite's range (default: any free port). */
  static async start(port?: number): Promise<ThrowawayNats> {
    const nats = new ThrowawayNats(port ?? (await freePort()), mkdtempSync(path.join(tmpdir(), "nexus-chaos-nats-")));
    await nats.start();
    return nats;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn(NATS_BIN, ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir], { stdio: "ignore" });
    await waitUntil("nats-server to listen", () => portOpen(this.port), 15_000);
  }

  /** SIGKILL: no graceful shutdown, like a crash or a lost node. */
  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }

  /** Deletes everything the server stored (while it is down): a node that comes back empty. */
  async wipe(): Promise<void> {
    for (const entry of await readdir(this.storeDir)) await rm(path.join(this.storeDir, entry), { recursive: true, force: true });
  }

  async destroy(): Promise<void> {
    await this.kill();
    await rm(this.storeDir, { recursive: true, force: true });
  }
}

/** Waits until `probe` holds: the suites' one polling helper (eventually.ts), for true/false probes. */
export async function waitUntil(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  await eventually(what, probe, timeoutMs);
}

/** `nexus dev` on the suite's own PostgreSQL and NATS, with the keys it printed. */
export interface ChaosMesh {
  pg: PgCluster;
  nats: ThrowawayNats;
  process: NexusProcess;
  url: string;
  platformKey: string;
  ownerKey: string;
  databaseUrl: string;
  client(apiKey?: string, options?: { timeoutMs?: number }): NexusClient;
  /** Runs one statement on a fresh connection (for assertions; fails while the server is down). */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Starts `nexus dev` again (after it exited) on the same database and NATS. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a PostgreSQL server, a nats-server and `nexus dev` on them (vectors on: the machine's PostgreSQL has pgvector). */
export async function startChaosMesh(env: Record<string, string> = {}): Promise<ChaosMesh> {
  const cluster = await startPrimary();
  const nats = await ThrowawayNats.start();
  const databaseUrl = cluster.url("postgres");
  const spawnDev = () =>
    startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: databaseUrl,
        NATS_URL: nats.url,
        LOG_LEVEL: process.env.NEXUS_TEST_LOG_LEVEL ?? "warn",
        NEXUS_LOG_PRETTY: "false",
        ...env,
      },
    });
  let proc: NexusProcess;
  try {
    proc = await spawnDev();
    const started = proc;
    await waitUntil("nexus dev to print its first-start keys", () => /owner key[^\n]*\n\s*(nxs_\S+)/.test(started.output()), 30_000);
  } catch (err) {
    await nats.destroy();
    await cluster.destroy();
    throw err;
  }
  const out = proc.output();
  const platformKey = /platform operator key[^\n]*\n\s*(nxs_\S+)/.exec(out)![1]!;
  const ownerKey = /owner key[^\n]*\n\s*(nxs_\S+)/.exec(out)![1]!;
  const mesh: ChaosMesh = {
    pg: cluster,
    nats,
    process: proc,
    url: proc.url.replace("localhost", "127.0.0.1"),
    platformKey,
    ownerKey,
    databaseUrl,
    client: (apiKey = ownerKey, options = {}) => createNexusClient({ baseUrl: mesh.url, apiKey, ...options }),
    async query<T>(sql: string, params?: unknown[]): Promise<T[]> {
      const c = new pg.Client({ connectionString: databaseUrl });
      c.on("error", () => undefined);
      await c.connect();
      try {
        return (await c.query(sql, params)).rows as T[];
      } finally {
        await c.end().catch(() => undefined);
      }
    },
    async restart() {
      mesh.process = await spawnDev();
      mesh.url = mesh.process.url.replace("localhost", "127.0.0.1");
    },
    async close() {
      await mesh.process.stop("SIGKILL");
      await nats.destroy();
      await cluster.destroy();
    },
  };
  return mesh;
}

/** What a call ended with: "OK", or the gRPC code name and ErrorInfo reason of its error. */
export async function outcome(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return "OK";
  } catch (err) {
    const e = ConnectError.from(err);
    return `${Code[e.code]}${errorReason(e) ? `/${errorReason(e)}` : ""}`;
  }
}

/** True while the process has not exited. */
export function alive(p: NexusProcess): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}
