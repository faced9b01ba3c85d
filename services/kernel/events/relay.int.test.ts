/**
 * The outbox relay across NATS outages, against a throw-away nats-server of this suite's own
 * (started, killed and restarted on the same port and store directory), so the shared NATS
 * other suites use is never stopped.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { Match, type NatsConnection } from "@nats-io/nats-core";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createTestDatabase, describeWithPostgres, reachable, type TestDatabase, uniqueToken } from "../../../tests/support/services.js";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { appendToStream, lastPosition } from "./event-store.js";
import { createNatsEventBus, type NatsEventBus } from "./nats-bus.js";
import { EVENT_HEADERS } from "./nats-message.js";
import { connectNats } from "./nats-streams.js";
import type { RecordedEvent } from "./ports.js";
import { createOutboxRelay } from "./relay.js";

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

  /** Deletes everything the server stored (call while it is down): a node that comes back empty. */
  async wipe(): Promise<void> {
    for (const entry of await readdir(this.storeDir)) await rm(join(this.storeDir, entry), { recursive: true, force: true });
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
      ...(process.env.NEXUS_TEST_LOG_LEVEL ? { logger: pino({ level: process.env.NEXUS_TEST_LOG_LEVEL }) } : {}),
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

  it("holds its backoff while NATS is down although every new event NOTIFYs it, and logs the outage once", async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const logger = pino(
      { level: "debug" },
      { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) },
    );
    // A second relay (standing by while NATS is up) with a logger of its own to count on.
    const watcher = createOutboxRelay({
      db,
      nats: bus.nats,
      subjectPrefix: bus.subjectPrefix,
      pollIntervalMs: 50,
      leaseMs: 1_500,
      retry: { initialMs: 50, maxMs: 400 },
      logger,
    });
    await watcher.start();
    try {
      await server.kill();
      await vi.waitFor(() => expect(watcher.status().failures).toBeGreaterThan(0), WAIT);
      const failuresAtStart = watcher.status().failures;
      const startedAt = Date.now();
      // 40 events over ~2 s, each one a NOTIFY that used to start a new round at once.
      for (let i = 0; i < 40; i++) {
        await appendMany(1, `notify-${i}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const elapsed = Date.now() - startedAt;
      const rounds = watcher.status().failures - failuresAtStart;
      // Backoff 50 → 400 ms: about elapsed / 400 + 4 rounds; 40 NOTIFYs must not add rounds.
      expect(rounds).toBeLessThanOrEqual(Math.ceil(elapsed / 400) + 5);
      await server.start();
      await vi.waitFor(() => expect(watcher.status().failures).toBe(0), WAIT);
      const warnings = lines.filter((l) => l.level >= 40).map((l) => l.msg);
      expect(warnings).toEqual(["relay cannot publish; retrying with backoff until it can (logged again when it recovers)"]);
      expect(lines.filter((l) => l.msg === "relay publishing again")).toHaveLength(1);
    } finally {
      await watcher.stop();
    }
    // The bus's own relay caught up with everything appended during the outage.
    const last = await lastPosition(db);
    await vi.waitFor(() => expect(bus.relay!.status().checkpoint).toBe(last), WAIT);
  });

  it("recreates the streams and the durable consumer when NATS comes back with empty storage, and replays what the lost stream held", async () => {
    // Hold the consumer on one event so the stream holds events it has not handled when NATS dies.
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const seen = new Map<string, number>();
    const sub = await bus.subscribe({
      name: "held",
      subject: "outage.>",
      // deliverFrom "new": only what is published from now on, so the test owns its events.
      deliverFrom: "new",
      handler: async (e) => {
        seen.set(e.eventId, (seen.get(e.eventId) ?? 0) + 1);
        if ((e.payload as { label?: string }).label === "held") await gate;
      },
    });
    try {
      const held = await appendMany(4, "held");
      await vi.waitFor(() => expect(seen.size).toBe(1), WAIT);
      await vi.waitFor(() => expect(bus.relay!.status().checkpoint).toBe(held.at(-1)!.position), WAIT);

      await server.kill();
      await server.wipe();
      const during = await appendMany(3, "lost");
      release();
      await server.start();

      // Streams and the durable consumer are back, without restarting anything.
      await vi.waitFor(async () => expect((await jsm.streams.info(stream)).config.name).toBe(stream), WAIT);
      await vi.waitFor(async () => expect((await jsm.consumers.info(stream, "held")).name).toBe("held"), WAIT);
      // Every event reached the consumer exactly once: the three it had not handled were
      // published again into the new stream, and the one it handled was skipped as a duplicate.
      // (The recreated consumer reads the new stream from its start, so it also gets this
      // suite's earlier events — replayed as well, since they are recent.)
      const all = [...held, ...during];
      await vi.waitFor(() => expect(all.filter((e) => seen.has(e.eventId))).toHaveLength(all.length), WAIT);
      expect(all.map((e) => seen.get(e.eventId))).toEqual(all.map(() => 1));
      expect(bus.relay!.status().replays).toBeGreaterThanOrEqual(1);
      const handledOnce = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM platform.processed_events WHERE consumer = 'held' AND event_id::text = ANY($1::text[])",
        [all.map((e) => e.eventId)],
      );
      expect(handledOnce.rows[0]?.n).toBe(all.length);
      // The earlier durable consumer is back too and healthy, and new events flow to both.
      const fresh = await appendMany(2, "after");
      await vi.waitFor(() => expect(fresh.every((e) => seen.has(e.eventId) && handled.has(e.eventId))).toBe(true), WAIT);
      await vi.waitFor(() => expect(bus.status().every((s) => s.healthy)).toBe(true), WAIT);
    } finally {
      release();
      await sub.stop();
    }
  });

  it("a draining consumer hands back the messages it pulled but did not handle at once, not after the ack wait", async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const first: string[] = [];
    const sub = await bus.subscribe({
      name: "drainer",
      subject: "drain.>",
      deliverFrom: "new",
      concurrency: 1,
      ackWaitMs: 30_000,
      handler: async (e) => {
        first.push(e.eventId);
        await gate;
      },
    });
    const events: RecordedEvent[] = [];
    for (let i = 0; i < 4; i++) {
      events.push(
        ...(await db.transaction((tx) =>
          appendToStream(tx, `drain-${i}`, "no_stream", [{ type: "test.v1.Drained", topic: "drain.item", payload: { i } }]),
        )),
      );
    }
    // One is being handled; the others were pulled into the client's buffer (max_messages 4).
    await vi.waitFor(() => expect(first).toHaveLength(1), WAIT);
    await vi.waitFor(async () => expect((await jsm.consumers.info(stream, "drainer")).num_ack_pending).toBe(4), WAIT);
    const stopping = sub.stop();
    release();
    await stopping;
    const second: string[] = [];
    const startedAt = Date.now();
    const again = await bus.subscribe({
      name: "drainer",
      subject: "drain.>",
      deliverFrom: "new",
      concurrency: 1,
      ackWaitMs: 30_000,
      handler: async (e) => void second.push(e.eventId),
    });
    try {
      await vi.waitFor(() => expect(second).toHaveLength(3), { timeout: 10_000, interval: 50 });
      expect(Date.now() - startedAt).toBeLessThan(10_000); // the ack wait is 30 s
      expect(new Set([...first, ...second])).toEqual(new Set(events.map((e) => e.eventId)));
    } finally {
      await again.stop();
    }
  });
});
