/**
 * Encryption at rest, end to end on PostgreSQL (`nexus dev` with the test master key of
 * vitest.config.ts): what an authorized caller reads is plaintext, what the tables hold is not,
 * and a key rotation in the middle of an ingestion load loses nothing.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunResponse } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { AGENT_SEALED_FIELDS } from "../services/agent/agent-parts.js";
import type { NexusClient } from "../services/client/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { createKeyring, getKeyringJob, parseMasterKeys, runReencryptJobs } from "../services/kernel/keyring/index.js";
import { KNOWLEDGE_SEALED_FIELDS } from "../services/knowledge/knowledge-parts.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { NEXUS_BIN } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

const run = promisify(execFile);
const SECRET = "The zanzibar aquifer pump station runs on override code quillfeather.";

async function collect(stream: AsyncIterable<RunResponse>): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

describeWithPostgres("encryption at rest (nexus dev on PostgreSQL)", () => {
  let mesh: AgentMesh;
  let tenantId: string;
  let owner: NexusClient;
  let db: Database;
  const masterKeys = parseMasterKeys(process.env.NEXUS_MASTER_KEYS ?? "", "NEXUS_MASTER_KEYS (vitest.config.ts)");

  beforeAll(async () => {
    mesh = await startAgentMesh();
    const t = await mesh.newTenant("pro");
    tenantId = t.tenantId;
    owner = mesh.client(t.key);
    db = await createPgDatabase({ url: mesh.databaseUrl, poolSize: 4 });
  }, 120_000);
  afterAll(async () => {
    await db?.close();
    await mesh?.close();
  });

  it("serves plaintext to the tenant while contents, chunks, sessions and messages are sealed in the tables", async () => {
    await ingestCorpus(owner, "vault", [{ id: "pump", text: SECRET }]);
    const search = await owner.retrieval.search({ corpusId: "vault", query: "zanzibar aquifer override code", topK: 3 });
    expect(search.hits[0]?.text).toContain("quillfeather");
    const events = await collect(
      owner.agent.run({ corpusId: "vault", message: "What is the override code of the zanzibar aquifer pump?" }),
    );
    const accepted = events.find((e) => e.event.case === "accepted");
    const sessionId = accepted?.event.case === "accepted" ? accepted.event.value.sessionId : "";
    const { session, messages } = await owner.agent.getSession({ sessionId });
    expect(session?.title).toContain("zanzibar");
    expect(messages.map((m) => m.text).join(" ")).toContain("quillfeather");

    // The tables, read directly: no plaintext, every value sealed (`NXK1` bytes, `nxk1.` text).
    const contents = await mesh.db.query<{ bytes: Buffer }>("SELECT bytes FROM ingestion.contents WHERE tenant_id = $1", [tenantId]);
    expect(contents.rows).toHaveLength(1);
    expect(contents.rows[0]!.bytes.subarray(0, 4).toString()).toBe("NXK1");
    expect(contents.rows[0]!.bytes.includes(Buffer.from("quillfeather"))).toBe(false);
    const stored = await mesh.db.query<{ value: string }>(
      `SELECT text AS value FROM retrieval.chunks WHERE tenant_id = $1
       UNION ALL SELECT title FROM agent.sessions WHERE tenant_id = $1
       UNION ALL SELECT text FROM agent.messages WHERE tenant_id = $1
       UNION ALL SELECT citations #>> '{}' FROM agent.messages WHERE tenant_id = $1`,
      [tenantId],
    );
    expect(stored.rows.length).toBeGreaterThanOrEqual(6);
    for (const { value } of stored.rows) {
      expect(value).toMatch(/^nxk1\./);
      expect(value).not.toMatch(/quillfeather|zanzibar|aquifer/i);
    }
    // Nor do the events of the event store carry the contents (ids, counts and digests only).
    const leaked = await mesh.db.query<{ type: string }>("SELECT type FROM platform.events WHERE payload::text ~* 'quillfeather|aquifer'");
    expect(leaked.rows).toEqual([]);
    // The full-text vector stays searchable (stemmed lexemes): the documented trade-off.
    const tsv = await mesh.db.query<{ tsv: string }>("SELECT tsv::text AS tsv FROM retrieval.chunks WHERE tenant_id = $1", [tenantId]);
    expect(tsv.rows[0]!.tsv).toContain("quillfeath");
    // Another tenant's data key cannot open these values (the scope is authenticated).
    const keyring = createKeyring({ db, masterKeys });
    const chunk = stored.rows[0]!.value;
    await expect(keyring.openText({ tenantId: "someone-else", purpose: "documents" }, chunk)).rejects.toThrow(/cannot be decrypted/);
    expect(await keyring.openText({ tenantId, purpose: "documents" }, chunk)).toBe(SECRET);
  });

  it("refuses to start with NEXUS_ENCRYPTION_AT_REST=on and no master key, saying what to set", async () => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      DATABASE_URL: mesh.databaseUrl,
      NEXUS_ENCRYPTION_AT_REST: "on",
      NEXUS_LEXICAL_ONLY: "true",
      NEXUS_MASTER_KEY_FILE: "/nonexistent/master-keys",
    };
    delete env.NEXUS_MASTER_KEYS;
    const refused = await run(process.execPath, [NEXUS_BIN, "dev", "--port", "0", "--host", "127.0.0.1"], { env }).then(
      () => undefined,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(refused?.code).toBe(1);
    expect(refused?.stderr).toContain("NEXUS_ENCRYPTION_AT_REST=on needs a master key");
  }, 60_000);

  it("loses nothing when the documents key is rotated in the middle of an ingestion load", async () => {
    const docs = Array.from({ length: 40 }, (_, i) => ({
      id: `load-${i}`,
      text: `Ledger entry ${i}: shipment token tok${i}x arrived intact.`,
    }));
    await owner.retrieval.createCorpus({ corpusId: "load", displayName: "load" });
    const ingest = async (batch: typeof docs) => {
      for (const d of batch)
        await owner.ingestion.ingestText({
          corpusId: "load",
          documentId: d.id,
          text: d.text,
          filename: `${d.id}.txt`,
          mediaType: "text/plain",
        });
    };
    const first = ingest(docs.slice(0, 20));
    // The operator rotates while documents are being written (the CLI, against the database).
    await eventually("some documents to be ingested", async () => {
      const { rows } = await mesh.db.query<{ n: number }>(
        "SELECT count(DISTINCT document_id)::int AS n FROM retrieval.chunks WHERE tenant_id = $1",
        [tenantId],
      );
      return rows[0]!.n >= 5;
    });
    const rotated = await run(
      process.execPath,
      [NEXUS_BIN, "keyring", "rotate", "--tenant", tenantId, "--purpose", "documents", "--json"],
      {
        env: { ...process.env, DATABASE_URL: mesh.databaseUrl },
      },
    );
    const job = JSON.parse(rotated.stdout) as { jobId: string; targetVersion: number };
    expect(job.targetVersion).toBe(2);
    await Promise.all([first, ingest(docs.slice(20))]);
    for (const d of docs) {
      await eventually(`document ${d.id} to succeed`, async () => {
        const { document } = await owner.ingestion.getDocument({ documentId: d.id });
        if (document?.status === DocumentStatus.FAILED) throw new Error(`${d.id} failed: ${document.failureReason}`);
        return document?.status === DocumentStatus.SUCCEEDED;
      });
    }
    // The mesh's own task re-seals in the background; the verifying pass waits for a grace
    // period (60 s) — here a second runner with no grace finishes it now.
    const keyring = createKeyring({ db, masterKeys });
    await eventually(
      "the re-encryption job to finish",
      async () => {
        await db.query("UPDATE platform.keyring_jobs SET locked_until = NULL WHERE job_id = $1 AND phase = 'verify'", [job.jobId]);
        await runReencryptJobs({ db, keyring, fields: KNOWLEDGE_SEALED_FIELDS, mode: "auto", graceMs: 0 });
        return (await getKeyringJob(db, job.jobId))?.status === "done";
      },
      60_000,
    );
    const finished = await getKeyringJob(db, job.jobId);
    expect(finished?.retiredVersions).toEqual([1]);
    // Every value of the tenant is under version 2; version 1 is destroyed; nothing was lost.
    const chunks = await mesh.db.query<{ text: string }>("SELECT text FROM retrieval.chunks WHERE tenant_id = $1", [tenantId]);
    expect(chunks.rows.length).toBe(41);
    for (const r of chunks.rows) expect(keyring.versionOf(r.text)).toBe(2);
    const contents = await mesh.db.query<{ bytes: Buffer }>("SELECT bytes FROM ingestion.contents WHERE tenant_id = $1", [tenantId]);
    expect(contents.rows.length).toBe(41);
    for (const r of contents.rows) expect(keyring.versionOf(r.bytes)).toBe(2);
    for (const d of docs) {
      const { hits } = await owner.retrieval.search({ corpusId: "load", query: `tok${docs.indexOf(d)}x`, topK: 1 });
      expect(hits[0]?.documentId).toBe(d.id);
      expect(hits[0]?.text).toBe(d.text);
    }
    // The earlier session still reads (its own purpose, not rotated).
    expect(AGENT_SEALED_FIELDS.every((f) => f.purpose === "sessions")).toBe(true);
    const { sessions } = await owner.agent.listSessions({});
    expect(sessions[0]?.title).toContain("zanzibar");
  });
});
