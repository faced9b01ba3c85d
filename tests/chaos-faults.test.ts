/**
 * Chaos: `nexus dev` (all services in one process, PostgreSQL + pgvector and NATS JetStream)
 * while its dependencies fail under it — on a PostgreSQL server and a nats-server of this suite's
 * own, never the shared ones. After each fault: the process is alive, the calls made meanwhile
 * ended OK or UNAVAILABLE (never INTERNAL), and it recovers by itself. At the end: every
 * document succeeded with exactly its chunks, every run is metered exactly once, and the audit
 * chain verifies.
 */
import { writeFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { RunStatus } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { RunCancelledSchema, RunCompletedSchema, RunFailedSchema } from "../gen/nexus/events/v1/agent_events_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { chunkText } from "../services/knowledge/ingestion/chunking/chunker.js";
import { alive, type ChaosMesh, describeChaos, outcome, startChaosMesh, waitUntil } from "./support/chaos.js";

const CORPUS = "chaos";

/** A ConnectError with this code and ErrorInfo reason (a run's in-stream error, as an RPC error would carry it). */
function domainErrorLike(code: Code, reason: string): ConnectError {
  return new ConnectError(reason, code, undefined, reason ? [{ desc: ErrorInfoSchema, value: { reason, domain: "nexus.dev" } }] : []);
}
const TERMINAL_RUN_EVENTS = [RunCompletedSchema.typeName, RunFailedSchema.typeName, RunCancelledSchema.typeName];

function documentText(id: string): string {
  const lines: string[] = [];
  for (let i = 0; i < 40; i++)
    lines.push(`Document ${id}, paragraph ${i}: the pump ${i % 7} in hall ${id} is checked every ${(i % 5) + 1} days.`);
  return lines.join("\n\n");
}

describeChaos("chaos: PostgreSQL and NATS fail under a running nexus dev", () => {
  let mesh: ChaosMesh;
  let api: NexusClient;
  /** Every document the suite ingested, by id, with its text. */
  const documents = new Map<string, string>();
  /** Request ids of runs a client saw complete (`done` with status COMPLETED). */
  const completedRuns = new Set<string>();
  /** In-stream errors of runs that failed after acceptance, as "CODE/REASON". */
  const runErrors: string[] = [];

  const ingest = async (id: string) => {
    const text = documentText(id);
    await api.ingestion.ingestText({ corpusId: CORPUS, documentId: id, text, filename: `${id}.txt`, mediaType: "text/plain" });
    documents.set(id, text);
  };
  /**
   * One Run; resolves to its request id. A run that fails after acceptance ends its stream with
   * an `error` event (not an RPC error): it is rejected here with that code, so the load's
   * outcomes see it.
   */
  const run = async (message: string, onAccepted?: () => void): Promise<string> => {
    let requestId = "";
    let error: { code: string; reason: string; metadata: Record<string, string> } | undefined;
    for await (const r of api.agent.run({ corpusId: CORPUS, message })) {
      if (r.event.case === "accepted") {
        requestId = r.event.value.requestId;
        onAccepted?.();
      }
      if (r.event.case === "error") error = { code: r.event.value.code, reason: r.event.value.reason, metadata: r.event.value.metadata };
      if (r.event.case === "done" && r.event.value.status === RunStatus.COMPLETED) completedRuns.add(requestId);
    }
    if (error) {
      runErrors.push(`${error.code}/${error.reason} ${JSON.stringify(error.metadata)}`);
      const code = (Object.entries(Code).find(([name]) => name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() === error.code)?.[1] ??
        Code.Unknown) as Code;
      throw domainErrorLike(code, error.reason);
    }
    return requestId;
  };
  const readyz = async () => {
    const res = await fetch(`${mesh.url}/readyz`);
    return {
      status: res.status,
      body: (await res.json()) as { checks: Array<{ name: string; ready: boolean; info?: Record<string, string> }> },
    };
  };

  /** Calls of several kinds, `workers` at a time, until stopped; counts outcomes by code/reason. */
  const load = (workers = 4) => {
    const outcomes = new Map<string, number>();
    let running = true;
    let n = 0;
    const calls: Array<[string, () => Promise<unknown>]> = [
      ["Search", () => api.retrieval.search({ corpusId: CORPUS, query: "pump in hall" })],
      ["GetDocument", () => api.ingestion.getDocument({ documentId: "seed-1" })],
      ["ListDocuments", () => api.ingestion.listDocuments({ corpusId: CORPUS })],
      ["Run", () => run("How often is the pump checked?")],
    ];
    const loops = Array.from({ length: workers }, async () => {
      while (running) {
        const [name, call] = calls[n++ % calls.length]!;
        const o = `${name} ${await outcome(call)}`;
        outcomes.set(o, (outcomes.get(o) ?? 0) + 1);
        if (o !== "OK") await new Promise((r) => setTimeout(r, 50));
      }
    });
    return {
      outcomes,
      async stop() {
        running = false;
        await Promise.all(loops);
        return outcomes;
      },
    };
  };
  const expectOnlyOkOrUnavailable = (outcomes: Map<string, number>) => {
    const codes = [...outcomes.keys()];
    const wrong = codes.filter((c) => !c.endsWith(" OK") && !c.includes(" Unavailable"));
    if (wrong.length > 0 && process.env.NEXUS_CHAOS_DUMP) writeFileSync(process.env.NEXUS_CHAOS_DUMP, mesh.process.output());
    expect(wrong, JSON.stringify([...outcomes])).toEqual([]);
  };
  const recovered = () =>
    waitUntil(
      "calls to succeed again",
      async () => (await outcome(() => api.ingestion.getDocument({ documentId: "seed-1" }))) === "OK",
      30_000,
    );
  const expectAlive = () => {
    if (!alive(mesh.process) && process.env.NEXUS_CHAOS_DUMP) writeFileSync(process.env.NEXUS_CHAOS_DUMP, mesh.process.output());
    expect(alive(mesh.process), mesh.process.output().slice(-3000)).toBe(true);
  };
  const anyFailed = (outcomes: Map<string, number>) => [...outcomes.keys()].some((k) => !k.endsWith(" OK"));

  beforeAll(async () => {
    // The agent's breakers open during the database faults (retrieval fails); a short reset lets
    // runs through again soon after it is back, instead of the default 30 s.
    mesh = await startChaosMesh({ NEXUS_AGENT_BREAKER_RESET_MS: "2000" });
    api = mesh.client();
    await api.retrieval.createCorpus({ corpusId: CORPUS, displayName: "Chaos" });
    for (const id of ["seed-1", "seed-2"]) await ingest(id);
    await waitUntil("the seed documents to be ingested", async () => {
      const { document } = await api.ingestion.getDocument({ documentId: "seed-2" });
      return document?.status === DocumentStatus.SUCCEEDED;
    });
    await run("How often is the pump checked?");
  }, 60_000);

  afterAll(async () => {
    await mesh?.close();
  });

  it("PostgreSQL restarted under load: no crash, UNAVAILABLE meanwhile, recovers by itself", async () => {
    const traffic = load();
    await new Promise((r) => setTimeout(r, 500));
    await mesh.pg.stop("fast");
    await waitUntil("calls to fail while the database is down", () => anyFailed(traffic.outcomes), 10_000);
    const during = await readyz();
    expect(during.status).toBe(503); // nothing can be served without the database
    expect(during.body.checks.find((c) => c.name === "database")?.ready).toBe(false);
    await new Promise((r) => setTimeout(r, 1_000));
    await mesh.pg.start();
    await recovered();
    const outcomes = await traffic.stop();
    expectAlive();
    expectOnlyOkOrUnavailable(outcomes);
    expect([...outcomes.keys()].filter((k) => k.endsWith(" Unavailable/DEPENDENCY_UNAVAILABLE")).length).toBeGreaterThan(0);
    expect((await readyz()).status).toBe(200);
    await ingest("after-pg-restart");
  }, 60_000);

  it("backends killed under load (pg_terminate_backend): no crash, UNAVAILABLE for the calls hit, recovers", async () => {
    const traffic = load();
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 300));
      // Every connection of the process, busy, idle or idle in a transaction.
      await mesh.query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    const outcomes = await traffic.stop();
    expectAlive();
    expectOnlyOkOrUnavailable(outcomes);
    await recovered();
    await ingest("after-backend-kill");
  }, 60_000);

  it("NATS killed and restarted with empty storage: pods stay ready, RPCs work, then everything queued flows", async () => {
    // From a healthy start: runs work (the agent's breakers closed again after the database faults).
    await waitUntil("runs to complete again", async () => (await outcome(() => run("How often is the pump checked?"))) === "OK", 40_000);
    await mesh.nats.kill();
    try {
      await duringNatsOutage();
    } finally {
      await mesh.nats.wipe();
      await mesh.nats.start();
    }
    await afterNatsOutage();
    expectAlive();
    expect((await readyz()).body.checks.find((c) => c.name === "event-bus")?.info?.connected).toBe("true");
    expect(await (await fetch(`${mesh.url}/metrics`)).text()).toMatch(/^nexus_event_bus_connected 1$/m);
  }, 90_000);

  const runsDuring: string[] = [];
  const duringNatsOutage = async () => {
    // Readiness means "can serve requests": the bus being down is a fact in /readyz and the metrics, not a 503.
    await waitUntil(
      "the bus to be seen down",
      async () => (await readyz()).body.checks.find((c) => c.name === "event-bus")?.info?.connected === "false",
      10_000,
    );
    const ready = await readyz();
    expect(ready.status).toBe(200);
    const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(metrics).toMatch(/^nexus_event_bus_connected 0$/m);
    // RPCs keep working: documents are accepted (queued in the outbox), runs are answered.
    for (const id of ["during-nats-1", "during-nats-2", "during-nats-3"]) await ingest(id);
    runsDuring.push(await run("Which hall has pump 3?"), await run("How often is pump 2 checked?"));
    expect(runsDuring.every((r) => completedRuns.has(r))).toBe(true);
  };
  const afterNatsOutage = async () => {
    // The documents accepted during the outage are ingested, and the runs metered, without a restart.
    await waitUntil(
      "the documents queued during the outage to be ingested",
      async () => {
        for (const id of ["during-nats-1", "during-nats-2", "during-nats-3"]) {
          const { document } = await api.ingestion.getDocument({ documentId: id });
          if (document?.status !== DocumentStatus.SUCCEEDED) return false;
        }
        return true;
      },
      30_000,
    );
    await waitUntil(
      "the runs of the outage to be metered",
      async () => {
        const rows = await mesh.query<{ n: number }>(
          "SELECT count(*)::int AS n FROM metering.usage_records WHERE request_id = ANY($1::text[])",
          [runsDuring],
        );
        return rows[0]?.n === runsDuring.length;
      },
      30_000,
    );
  };

  it("SIGTERM during runs: the process drains and exits cleanly; runs end, and after a restart all is accounted for", async () => {
    // Documents queued just before: the ingestion worker is busy with them (or holds them pulled) when the signal comes.
    for (const id of ["before-sigterm-1", "before-sigterm-2", "before-sigterm-3"]) await ingest(id);
    let accepted = 0;
    const runs = Array.from({ length: 4 }, (_, i) =>
      outcome(() => run(`How often is pump ${i} checked in hall seed-1?`, () => void accepted++)),
    );
    await waitUntil("the runs to be accepted", () => accepted === runs.length, 10_000);
    const code = await mesh.process.stop("SIGTERM");
    expect(code).toBe(0);
    // Runs in flight when the signal came were drained, not cut: each one completed.
    const outcomes = await Promise.all(runs);
    expect(outcomes, outcomes.join(", ")).toEqual(runs.map(() => "OK"));
    await mesh.restart();
    api = mesh.client();
    await recovered();
    await ingest("after-sigterm");
  }, 60_000);

  it("afterwards: every document succeeded with exactly its chunks, every run metered exactly once, the audit chain verifies", async () => {
    await waitUntil(
      "every document to be ingested",
      async () => {
        for (const id of documents.keys()) {
          const { document } = await api.ingestion.getDocument({ documentId: id });
          if (document?.status !== DocumentStatus.SUCCEEDED) return false;
        }
        return true;
      },
      30_000,
    );
    for (const [id, text] of documents) {
      const expected = chunkText(text).length;
      const { document } = await api.ingestion.getDocument({ documentId: id });
      expect(document?.chunkCount, id).toBe(expected);
      const rows = await mesh.query<{ n: number; ordinals: number; vectors: number }>(
        "SELECT count(*)::int AS n, count(DISTINCT ordinal)::int AS ordinals, count(embedding)::int AS vectors FROM retrieval.chunks WHERE document_id = $1",
        [id],
      );
      expect(rows[0], id).toEqual({ n: expected, ordinals: expected, vectors: expected });
    }

    // Every run that ended is metered once: one usage record per terminal run event, none twice.
    await waitUntil(
      "every run to be metered",
      async () => {
        const rows = await mesh.query<{ ended: number; metered: number }>(
          `SELECT count(*)::int AS ended, count(u.id)::int AS metered FROM platform.events e
         LEFT JOIN metering.usage_records u ON u.source_event_id = e.event_id::text WHERE e.type = ANY($1::text[])`,
          [TERMINAL_RUN_EVENTS],
        );
        return rows[0]!.ended > 0 && rows[0]!.ended === rows[0]!.metered;
      },
      30_000,
    );
    const twice = await mesh.query(
      "SELECT tenant_id, request_id, count(*)::int AS n FROM metering.usage_records GROUP BY 1, 2 HAVING count(*) > 1",
    );
    expect(twice).toEqual([]);
    const metered = await mesh.query<{ request_id: string }>("SELECT request_id FROM metering.usage_records");
    const meteredIds = new Set(metered.map((r) => r.request_id));
    expect(completedRuns.size).toBeGreaterThan(3);
    expect([...completedRuns].filter((r) => !meteredIds.has(r))).toEqual([]);
    // Runs that failed during the database outages answered UNAVAILABLE in their stream.
    expect(
      runErrors.filter((e) => !e.startsWith("UNAVAILABLE/")),
      runErrors.join(", "),
    ).toEqual([]);

    const platform = mesh.client(mesh.platformKey);
    const { tenantId } = (await api.auth.whoAmI({})).principal ?? { tenantId: "" };
    const tenantChain = await platform.audit.verifyAuditChain({ tenantId });
    expect(tenantChain.ok).toBe(true);
    expect(tenantChain.entriesChecked).toBeGreaterThan(0n);
    expect((await platform.audit.verifyAuditChain({ tenantId: "" })).ok).toBe(true);
    expectAlive();
  }, 60_000);
});
