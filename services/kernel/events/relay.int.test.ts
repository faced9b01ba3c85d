/**
 * The outbox relay across NATS outages, against a throw-away nats-server of this suite's own
 * (started, killed and restarted on the same port and store directory), so the shared NATS
 * other suites use is never stopped.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { Match, type NatsConnection } from "@nats-io/nats-core";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createTestDatabase, describeWithPostgres, reachable, uniqueToken, type TestDatabase } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { appendToStream, lastPosition } from "./event-store.js";
import { createNatsEventBus, type NatsEventBus } from "./nats-bus.js";
import { EVENT_HEADERS } from "./nats-message.js";
import { connectNats } from "./nats-streams.js";
import { createOutboxRelay } from "./relay.js";
import type { RecordedEvent } from "./ports.js";

const NATS_BIN = "/usr/sbin/nats-server";
const REQUIRE = process.env.NEXUS_REQUIRE_SERVICES === "1";

function describeWithNatsBinary(): typeof describeWithPostgres {
  if (existsSync(NATS_BIN)) return describeWithPostgres;
  if (REQUIRE) throw new Error(`${NATS_BIN} is missing and NEXUS_REQUIRE_SERVICES=1: install nats-server`);
  console.warn(`[nexus tests] skipping the NATS outage suite: ${NATS_BIN} is not installed`);
  return describe.skip;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A nats-server process of this suite: same port and store directory across restarts. */
class ThrowawayNats {
  private proc: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly storeDir: string,
  ) {}

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = spawn(NATS_BIN, ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir], { stdio: "ignore" });
    await vi.waitFor(
      async () => {
        if (!(await reachable(this.url, this.port, 200))) throw new Error("nats-server not up yet");
      },
      { timeout: 15_000, interval: 50 },
    );
  }

  /** Kills the server (SIGKILL: no graceful shutdown, like a crash or a lost node). */
  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once("exit", resolve));
    proc.kill("SIGKILL");
    await exited;
  }
}

const WAIT = { timeout: 30_000, interval: 50 };

describeWithNatsBinary()("outbox relay and consumers across a NATS outage", () => {
  let testDb: TestDatabase;
  let db: Database;
  let server: ThrowawayNats;
  let bus: NatsEventBus;
  let probe: NatsConnection;
  let jsm: JetStreamManager;
  const token = uniqueToken("o").toUpperCase();
  const stream = `EVENTS_${token}`;
  const handled = new Map<string, number>();

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    server = new ThrowawayNats(await freePort(), await mkdtemp(join(tmpdir(), "nexus-nats-")));
    await server.start();
    bus = await createNatsEventBus({
      db,
      nats: { servers: server.url, name: "relay-outage-test" },
      subjectPrefix: uniqueToken("p"),
      stream,
      dlqStream: `DLQ_${token}`,
      relay: { pollIntervalMs: 50, retry: { initialMs: 50, maxMs: 500 }, publishTimeoutMs: 1_000 },
      consumerHeartbeatMs: 500,
    });
    await bus.start();
    await bus.subscribe({
      name: "survivor",
      subject: "outage.>",
      handler: async (e) => void handled.set(e.eventId, (handled.get(e.eventId) ?? 0) + 1),
    });
    probe = await connectNats({ servers: server.url, name: "relay-outage-probe" });
    jsm = await jetstreamManager(probe);
  });

  afterAll(async () => {
    await bus?.close().catch(() => undefined);
    await probe?.close().catch(() => undefined);
    await server?.kill();
    await db?.close();
    await testDb?.drop();
    if (server) await rm(server.storeDir, { recursive: true, force: true });
  });

  async function appendMany(n: number, label: string): Promise<RecordedEvent[]> {
    const out: RecordedEvent[] = [];
    for (let i = 0; i < n; i++) {
      const recorded = await db.transaction((tx) =>
        appendToStream(tx, `order-${label}-${i}`, "no_stream", [
          { type: "test.v1.OrderPlaced", topic: "outage.order_placed", payload: { label, i } },
        ]),
      );
      out.push(...recorded);
    }
    return out;
  }

  /** Every message in the events stream, in stream order, by event id. */
  async function streamEventIds(): Promise<string[]> {
    const info = await jsm.streams.info(stream);
    const ids: string[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (m) ids.push(m.header.get(EVENT_HEADERS.EVENT_ID, Match.IgnoreCase));
    }
    return ids;
  }

  it("publishes events appended while NATS is down exactly once after it is back, and consumers resume", async () => {
    const before = await appendMany(3, "before");
    await vi.waitFor(async () => expect(await streamEventIds()).toHaveLength(3), WAIT);
    await vi.waitFor(() => expect(handled.size).toBe(3), WAIT);

    await server.kill();
    const during = await appendMany(10, "during");
    // The relay noticed: its rounds fail and nothing is checkpointed past the outage.
    await vi.waitFor(() => expect(bus.relay!.status()).toMatchObject({ connected: false }), WAIT);
    expect(bus.relay!.status().checkpoint).toBe(before.at(-1)!.position);

    await server.start();
    const all = [...before, ...during];
    await vi.waitFor(async () => expect(await streamEventIds()).toHaveLength(all.length), WAIT);
    // Exactly once each, in global position order.
    expect(await streamEventIds()).toEqual(all.map((e) => e.eventId));
    await vi.waitFor(() => expect(bus.relay!.status().checkpoint).toBe(all.at(-1)!.position), WAIT);

    // The durable consumer picked up where it was, and handled each event once.
    await vi.waitFor(() => expect(handled.size).toBe(all.length), WAIT);
    expect([...handled.values()].every((n) => n === 1)).toBe(true);
    await vi.waitFor(() => expect(bus.status()[0]).toMatchObject({ name: "survivor", healthy: true }), WAIT);
  });

  it("adds no duplicates when the relay re-publishes after a crash between publish and checkpoint", async () => {
    const published = await streamEventIds();
    const last = await lastPosition(db);
    const duplicatesBefore = bus.relay!.status().duplicates;
    // What a crash right after the publish acks (before the checkpoint update) leaves behind.
    await db.query("UPDATE platform.outbox_checkpoint SET position = 0");
    await vi.waitFor(() => expect(bus.relay!.status().duplicates - duplicatesBefore).toBe(published.length), WAIT);
    await vi.waitFor(() => expect(bus.relay!.status().checkpoint).toBe(last), WAIT);
    expect(await streamEventIds()).toEqual(published);
    expect(new Set(published).size).toBe(published.length);
  });

  it("lets only one of two relay replicas publish; the other stands by", async () => {
    const standby = createOutboxRelay({
      db,
      nats: bus.nats,
      subjectPrefix: bus.subjectPrefix,
      pollIntervalMs: 50,
    });
    await standby.start();
    try {
      const before = (await streamEventIds()).length;
      const fresh = await appendMany(5, "replicas");
      await vi.waitFor(async () => expect(await streamEventIds()).toHaveLength(before + fresh.length), WAIT);
      await vi.waitFor(() => expect(bus.relay!.status().checkpoint).toBe(fresh.at(-1)!.position), WAIT);
      expect(bus.relay!.status().leader).toBe(true);
      expect(standby.status()).toMatchObject({ leader: false, published: 0, duplicates: 0 });
    } finally {
      await standby.stop();
    }
  });
});
