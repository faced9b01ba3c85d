import pg from "pg";
import { Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { DocumentStatus } from "../../gen/nexus/ingestion/v1/document_pb.js";
import { createNexusClient, type NexusClient } from "../../services/client/index.js";
import { eventually } from "./eventually.js";
import { type NexusProcess, startNexus } from "./nexus-process.js";
import { createTestDatabase, TEST_LEXICAL_ONLY, type TestDatabase } from "./services.js";

/**
 * `nexus dev` as a user starts it — all five services in one process, the real
 * authentication gate and permission table — on a fresh PostgreSQL database (hybrid search
 * with pgvector when the server has it, as CI's does), with the keys it prints on its first start: a
 * platform key and the owner key of the "demo" tenant (plan pro). Agent end-to-end tests call
 * it over the network and read its database directly to check what was stored.
 */
export interface AgentMesh {
  url: string;
  /** host:port for grpc-js clients. */
  address: string;
  process: NexusProcess;
  platformKey: string;
  /** Owner key of the demo tenant (plan pro). */
  ownerKey: string;
  /** A connection to the mesh's database (for assertions only). */
  db: pg.Client;
  /** The mesh's database URL (for more processes on the same database). */
  databaseUrl: string;
  /** An SDK client (Connect binary over HTTP/1.1 unless told otherwise). */
  client(apiKey?: string, options?: { protocol?: "connect" | "grpc"; useJson?: boolean; timeoutMs?: number }): NexusClient;
  /** Creates a tenant on a plan and returns a key with the role. */
  newTenant(
    plan: "free" | "pro" | "enterprise",
    role?: "owner" | "admin" | "editor" | "viewer",
  ): Promise<{ tenantId: string; key: string }>;
  close(): Promise<void>;
}

const PLANS = { free: Plan.FREE, pro: Plan.PRO, enterprise: Plan.ENTERPRISE } as const;
const ROLES = { owner: Role.OWNER, admin: Role.ADMIN, editor: Role.EDITOR, viewer: Role.VIEWER } as const;

let tenantSeq = 0;

/** Starts `nexus dev` on a fresh test database with extra environment (e.g. NEXUS_AGENT_*). */
export async function startAgentMesh(env: Record<string, string> = {}): Promise<AgentMesh> {
  const database: TestDatabase = await createTestDatabase("nexus_agent");
  let proc: NexusProcess | undefined;
  let db: pg.Client | undefined;
  try {
    proc = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: database.url,
        NEXUS_LEXICAL_ONLY: TEST_LEXICAL_ONLY,
        LOG_LEVEL: process.env.NEXUS_TEST_LOG_LEVEL ?? "warn",
        NEXUS_LOG_PRETTY: "false",
        ...env,
      },
    });
    const started = proc;
    await eventually("nexus dev to print its first-start keys", () => /owner key[^\n]*\n\s*(nxs_\S+)/.test(started.output()), 30_000);
    const out = proc.output();
    const platformKey = /platform operator key[^\n]*\n\s*(nxs_\S+)/.exec(out)?.[1];
    const ownerKey = /owner key[^\n]*\n\s*(nxs_\S+)/.exec(out)?.[1];
    if (!platformKey || !ownerKey) throw new Error(`nexus dev printed no keys:\n${out}`);
    db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const url = proc.url.replace("localhost", "127.0.0.1");
    const client = (apiKey = ownerKey, options: { protocol?: "connect" | "grpc"; useJson?: boolean; timeoutMs?: number } = {}) =>
      createNexusClient({ baseUrl: url, apiKey, ...options });
    const platform = client(platformKey);
    const connection = db;
    return {
      url,
      address: `127.0.0.1:${proc.port}`,
      process: proc,
      platformKey,
      ownerKey,
      db: connection,
      databaseUrl: database.url,
      client,
      async newTenant(plan, role = "owner") {
        tenantSeq += 1;
        const slug = `agent-${process.pid}-${tenantSeq}-${Math.random().toString(36).slice(2, 8)}`;
        const { tenant } = await platform.auth.createTenant({ slug, displayName: slug, plan: PLANS[plan] });
        if (!tenant) throw new Error("CreateTenant returned no tenant");
        const issued = await platform.auth.createApiKey({ tenantId: tenant.id, name: `${role} key`, role: ROLES[role] });
        return { tenantId: tenant.id, key: issued.plaintextKey };
      },
      async close() {
        await connection.end().catch(() => {});
        await started.stop();
        await database.drop();
      },
    };
  } catch (err) {
    await db?.end().catch(() => {});
    await proc?.stop();
    await database.drop();
    throw err;
  }
}

/** One document to ingest. */
export interface FixtureDocument {
  id: string;
  text: string;
  filename?: string;
}

/**
 * Creates the corpus (if needed) and ingests the documents as text/plain, waiting until each
 * has SUCCEEDED (fails on FAILED). text/plain is extracted as is, so citation offsets can be
 * checked against the original text.
 */
export async function ingestCorpus(client: NexusClient, corpusId: string, documents: readonly FixtureDocument[]): Promise<void> {
  try {
    await client.retrieval.createCorpus({ corpusId, displayName: corpusId });
  } catch (err) {
    if (!String((err as Error).message).includes("already exists")) throw err;
  }
  for (const d of documents) {
    await client.ingestion.ingestText({
      corpusId,
      documentId: d.id,
      text: d.text,
      filename: d.filename ?? `${d.id}.txt`,
      mediaType: "text/plain",
    });
  }
  for (const d of documents) {
    const settled = await eventually(`document ${d.id} to be ingested`, async () => {
      const { document } = await client.ingestion.getDocument({ documentId: d.id });
      const done = document?.status === DocumentStatus.SUCCEEDED || document?.status === DocumentStatus.FAILED;
      return done && document;
    });
    // Fail at once on FAILED rather than polling until the timeout.
    if (settled.status === DocumentStatus.FAILED) throw new Error(`document ${d.id} failed: ${settled.failureReason}`);
  }
}

/** The agent's run events (RunStarted/Completed/Failed/Cancelled) of one run, oldest first. */
export async function runEvents(
  db: pg.Client,
  tenantId: string,
  requestId: string,
): Promise<Array<{ type: string; payload: Record<string, unknown> }>> {
  const { rows } = await db.query<{ type: string; payload: Record<string, unknown> }>(
    "SELECT type, payload FROM platform.events WHERE stream_id = $1 ORDER BY version",
    [`agent-run-${tenantId}-${requestId}`],
  );
  return rows;
}
