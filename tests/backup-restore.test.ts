/**
 * Backups that restore (issue 17), as an operator runs them: `nexus backup` of a running mesh on
 * PostgreSQL, the database dropped, `nexus restore` into an empty one, `nexus dev` started on it
 * answering the same API keys with the same (decrypted) search results, the restore drill, and
 * refusals of a tampered manifest, a corrupted file, a wrong master key and a non-empty target.
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunResponse } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { createNexusClient } from "../services/client/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import { createKeyring, newMasterKeyLine, parseMasterKeys } from "../services/kernel/keyring/index.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { NEXUS_BIN, type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, TEST_LEXICAL_ONLY, type TestDatabase } from "./support/services.js";

const exec = promisify(execFile);

async function nexus(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [NEXUS_BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, out: (e.stdout ?? "") + (e.stderr ?? "") };
  }
}

async function collect(stream: AsyncIterable<RunResponse>): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

async function tableCount(url: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    );
    return rows[0]!.n;
  } finally {
    await c.end();
  }
}

describeWithPostgres("nexus backup / restore / restore drill (PostgreSQL)", () => {
  let mesh: AgentMesh | undefined;
  let dir: ReturnType<typeof tempDir>;
  let restored: TestDatabase;
  let restoredProcess: NexusProcess | undefined;
  const scratch: TestDatabase[] = [];
  let keyA: string;
  let tenantA: string;
  let tenantB: string;
  let manifest: string;
  let sourceUrl: string;

  beforeAll(async () => {
    dir = tempDir("nexus-backups-");
    mesh = await startAgentMesh();
    sourceUrl = mesh.databaseUrl;
    const a = await mesh.newTenant("pro");
    keyA = a.key;
    tenantA = a.tenantId;
    const owner = mesh.client(a.key);
    await ingestCorpus(owner, "ops", [
      { id: "runbook", text: "The failover runbook: promote the replica named marlin-seven, then repoint the pooler." },
    ]);
    await collect(owner.agent.run({ corpusId: "ops", message: "Which replica does the failover runbook promote?" }));
    const b = await mesh.newTenant("pro");
    tenantB = b.tenantId;
    await ingestCorpus(mesh.client(b.key), "b-docs", [{ id: "b1", text: "Tenant B keeps its own secret: the pelican ledger." }]);
    // The audit trail has recorded the tenants' activity (it consumes the events).
    await eventually("audit entries for tenant A", async () => {
      const { rows } = await mesh!.db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit.entries WHERE tenant_id = $1", [
        a.tenantId,
      ]);
      return rows[0]!.n > 0;
    });
  }, 180_000);
  afterAll(async () => {
    await restoredProcess?.stop();
    await mesh?.close();
    await restored?.drop();
    for (const d of scratch) await d.drop();
    dir?.remove();
  });

  it("backs up a running mesh into an encrypted dump and a signed manifest with row counts", async () => {
    const r = await nexus(["backup", "--out", dir.dir, "--json"], { DATABASE_URL: sourceUrl });
    expect(r.code, r.out).toBe(0);
    const m = JSON.parse(r.out) as { manifestPath: string; rowCounts: Record<string, number>; file: string; signature: string };
    manifest = m.manifestPath;
    // Tenants A and B, and the demo corpus `nexus dev` seeds.
    expect(m.rowCounts["retrieval.chunks"]).toBeGreaterThanOrEqual(2);
    expect(m.rowCounts["ingestion.documents"]).toBeGreaterThanOrEqual(2);
    expect(m.rowCounts["audit.entries"]).toBeGreaterThan(0);
    expect(m.signature).toMatch(/^[0-9a-f]{64}$/);
    // The dump on disk is ciphertext: neither the sealed rows' plaintext nor the table names show.
    const file = readFileSync(path.join(dir.dir, m.file));
    expect(file.includes(Buffer.from("retrieval"))).toBe(false);
    expect(file.includes(Buffer.from("PGDMP"))).toBe(false);
  }, 120_000);

  it("restores into an empty database after the source is gone, and nexus dev serves it with the same keys and texts", async () => {
    await mesh!.close();
    mesh = undefined;
    restored = await createTestDatabase("nexus_restored");
    const r = await nexus(["restore", "--from", manifest, "--target-url", restored.url]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain("counts match the manifest");
    restoredProcess = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1"],
      env: { DATABASE_URL: restored.url, NEXUS_LEXICAL_ONLY: TEST_LEXICAL_ONLY, LOG_LEVEL: "warn", NEXUS_LOG_PRETTY: "false" },
    });
    const client = createNexusClient({ baseUrl: restoredProcess.url.replace("localhost", "127.0.0.1"), apiKey: keyA });
    const { hits } = await client.retrieval.search({ corpusId: "ops", query: "failover replica", topK: 1 });
    expect(hits[0]?.text).toContain("marlin-seven");
    const { sessions } = await client.agent.listSessions({});
    expect(sessions[0]?.title).toContain("failover");
    // A second restore into the now non-empty database is refused.
    const again = await nexus(["restore", "--from", manifest, "--target-url", restored.url]);
    expect(again.code).toBe(1);
    expect(again.out).toContain("RESTORE_TARGET_NOT_EMPTY");
  }, 180_000);

  it("passes the restore drill: row counts, every audit chain and a search that decrypts", async () => {
    const r = await nexus(["restore", "drill", "--from", manifest, "--json"], { DATABASE_URL: restored.url });
    expect(r.code, r.out).toBe(0);
    const report = JSON.parse(r.out) as {
      ok: boolean;
      auditChains: Array<{ ok: boolean; entries: number }>;
      search: { hits: number; opened: boolean };
      database: string;
    };
    expect(report.ok).toBe(true);
    expect(report.auditChains.length).toBeGreaterThan(0);
    expect(report.auditChains.every((c) => c.ok && c.entries > 0)).toBe(true);
    expect(report.search.hits).toBeGreaterThan(0);
    expect(report.search.opened).toBe(true);
  }, 120_000);

  it("refuses a tampered manifest, a corrupted dump and the wrong master key, touching nothing", async () => {
    const target = await createTestDatabase("nexus_refused");
    scratch.push(target);
    const files = readdirSync(dir.dir);
    const original = JSON.parse(readFileSync(manifest, "utf8")) as Record<string, unknown> & {
      rowCounts: Record<string, number>;
      file: string;
    };
    // 1. A row count edited in the manifest: the signature no longer verifies.
    const tampered = path.join(dir.dir, "tampered.manifest.json");
    writeFileSync(tampered, JSON.stringify({ ...original, rowCounts: { ...original.rowCounts, "retrieval.chunks": 3 } }));
    let r = await nexus(["restore", "--from", tampered, "--target-url", target.url]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("BACKUP_MANIFEST_INVALID");
    // 2. One byte of the encrypted dump flipped: the checksum no longer matches.
    const bent = path.join(dir.dir, "bent.dump.enc");
    const bytes = readFileSync(path.join(dir.dir, original.file));
    bytes[Math.floor(bytes.length / 2)]! ^= 1;
    writeFileSync(bent, bytes);
    const bentManifest = path.join(dir.dir, "bent.manifest.json");
    writeFileSync(bentManifest, JSON.stringify({ ...original, file: "bent.dump.enc" }));
    r = await nexus(["restore", "--from", bentManifest, "--target-url", target.url]);
    expect(r.code).toBe(1);
    expect(r.out).toContain("BACKUP_MANIFEST_INVALID"); // the file name is signed too
    // 3. The right manifest under another master key.
    r = await nexus(["restore", "--from", manifest, "--target-url", target.url], { NEXUS_MASTER_KEYS: newMasterKeyLine(1) });
    expect(r.code).toBe(1);
    expect(r.out).toContain("BACKUP_MANIFEST_INVALID");
    expect(await tableCount(target.url)).toBe(0);
    expect(files.length).toBeGreaterThan(0);
  }, 120_000);

  it("makes a shredded tenant's data unreadable in a backup taken after the shred, and in an older one restored later", async () => {
    const masterKeys = parseMasterKeys(process.env.NEXUS_MASTER_KEYS ?? "", "vitest.config.ts");
    const db = await createPgDatabase({ url: restored.url, poolSize: 2 });
    try {
      await createKeyring({ db, masterKeys }).shred(tenantB);
    } finally {
      await db.close();
    }
    // Tenant B's chunk does not open and tenant A's does, in a database restored from `manifestPath`.
    const restoreAndRead = async (manifestPath: string, extra: string[] = []) => {
      const copy = await createTestDatabase("nexus_shred_copy");
      scratch.push(copy);
      const r = await nexus(["restore", "--from", manifestPath, "--target-url", copy.url, ...extra]);
      expect(r.code, r.out).toBe(0);
      const copyDb = await createPgDatabase({ url: copy.url, poolSize: 2 });
      try {
        const keyring = createKeyring({ db: copyDb, masterKeys });
        const { rows } = await copyDb.query<{ tenant_id: string; text: string }>("SELECT tenant_id, text FROM retrieval.chunks");
        const bChunk = rows.find((x) => x.tenant_id === tenantB)!;
        const aChunk = rows.find((x) => x.tenant_id === tenantA)!;
        await expect(keyring.openText({ tenantId: tenantB, purpose: "documents" }, bChunk.text)).rejects.toThrow(/cannot be decrypted/);
        expect(await keyring.openText({ tenantId: aChunk.tenant_id, purpose: "documents" }, aChunk.text)).toContain("marlin-seven");
      } finally {
        await copyDb.close();
      }
      return r.out;
    };
    // A backup after the shred, into the same directory as the one taken before it: it adds
    // tenant B to the directory's signed shred list.
    const b = await nexus(["backup", "--out", dir.dir, "--json"], { DATABASE_URL: restored.url });
    expect(b.code, b.out).toBe(0);
    await restoreAndRead((JSON.parse(b.out) as { manifestPath: string }).manifestPath);
    const list = JSON.parse(readFileSync(path.join(dir.dir, "shred-list.json"), "utf8")) as { tenants: Array<{ tenantId: string }> };
    expect(list.tenants.map((t) => t.tenantId)).toEqual([tenantB]);
    // The OLDER backup, taken while tenant B was alive and still holding its keys: the restore
    // re-applies the shred list, so B stays unreadable.
    const out = await restoreAndRead(manifest);
    expect(out).toContain(`keys destroyed again for ${tenantB}`);
    // The older backup copied elsewhere without its list, given the list explicitly: same.
    const elsewhere = tempDir("nexus-backups-copied-");
    try {
      const m = JSON.parse(readFileSync(manifest, "utf8")) as { file: string };
      writeFileSync(path.join(elsewhere.dir, path.basename(manifest)), readFileSync(manifest));
      writeFileSync(path.join(elsewhere.dir, m.file), readFileSync(path.join(dir.dir, m.file)));
      await restoreAndRead(path.join(elsewhere.dir, path.basename(manifest)), ["--shred-list", path.join(dir.dir, "shred-list.json")]);
      // A shred list with a tenant removed does not verify: the restore is refused, touching nothing.
      const forged = path.join(elsewhere.dir, "shred-list.json");
      writeFileSync(forged, JSON.stringify({ ...list, tenants: [] }));
      const target = await createTestDatabase("nexus_forged_list");
      scratch.push(target);
      const r = await nexus(["restore", "--from", path.join(elsewhere.dir, path.basename(manifest)), "--target-url", target.url]);
      expect(r.code).toBe(1);
      expect(r.out).toContain("SHRED_LIST_INVALID");
      expect(await tableCount(target.url)).toBe(0);
    } finally {
      elsewhere.remove();
    }
  }, 240_000);
});
