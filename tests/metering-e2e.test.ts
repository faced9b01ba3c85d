/**
 * Metering, quotas and the audit log end to end, as users meet them: `nexus dev` on PostgreSQL
 * and NATS JetStream with the real authentication gate and permission table, the API keys it
 * prints, agent runs over the network, and the `nexus usage`, `nexus quota` and `nexus audit`
 * commands.
 */
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunResponse } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { Period } from "../gen/nexus/metering/v1/quota_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { NEXUS_BIN, tempDir } from "./support/nexus-process.js";
import { describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

/** Runs `nexus <args>` to completion against the mesh. */
function nexus(args: string[], env: Record<string, string | undefined>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [NEXUS_BIN, ...args], {
      env: { ...process.env, LOG_LEVEL: "warn", DATABASE_URL: undefined, NATS_URL: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

async function run(client: NexusClient, message: string): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of client.agent.run({ corpusId: "notes", message })) out.push(r);
  return out;
}

/** These tests spawn the CLI several times (a few seconds each on a busy machine). */
const CLI_TEST_TIMEOUT_MS = 180_000;

const NOTES = "Quotas limit how many runs a tenant may start per day and per month. Platform operators change them with nexus quota set.";

describeWithPostgresAndNats("metering, quotas and audit end to end (nexus dev on PostgreSQL + NATS)", () => {
  let mesh: AgentMesh;
  const token = uniqueToken("e").toUpperCase();
  const files = tempDir("nexus-audit-e2e-");
  let tenantId: string;
  let tenantKey: string;
  let tenant: NexusClient;
  const as = (key: string) => ({ NEXUS_URL: mesh.url, NEXUS_API_KEY: key });

  beforeAll(async () => {
    mesh = await startAgentMesh({
      NATS_URL: TEST_NATS_URL,
      NEXUS_SUBJECT_PREFIX: uniqueToken("p"),
      NEXUS_NATS_STREAM: suiteStreams(token).stream,
      NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
    });
    ({ tenantId, key: tenantKey } = await mesh.newTenant("pro", "owner"));
    tenant = mesh.client(tenantKey);
    await ingestCorpus(tenant, "notes", [{ id: "quotas", text: NOTES }]);
  }, 180_000);

  afterAll(async () => {
    await mesh?.close();
    await deleteSuiteStreams(token);
    files.remove();
  });

  it("meters an agent run once and shows it in `nexus usage`", { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const events = await run(tenant, "Who changes quotas?");
    expect(events.at(-1)?.event.case).toBe("done");
    await eventually(
      "the run's usage",
      async () => (await tenant.metering.getUsageSummary({ period: Period.MONTH })).totals?.runsCompleted === 1n,
    );
    const r = await nexus(["usage", "--json"], as(tenantKey));
    const usage = JSON.parse(r.stdout) as { totals?: { runsCompleted?: string; runUnits?: number }; quota?: { runsUsed?: string } };
    expect(usage.totals?.runsCompleted).toBe("1");
    expect(usage.totals?.runUnits).toBeGreaterThan(0);
    expect(usage.quota?.runsUsed).toBe("1");
    const human = await nexus(["usage"], as(tenantKey));
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toMatch(/runs\s+1 \/ 5000/);
    const today = new Date().toISOString().slice(0, 10);
    const history = await nexus(["usage", "history", "--from", today, "--to", today], as(tenantKey));
    expect(history.stdout).toContain(today);
    const badRange = await nexus(["usage", "history", "--from", "2024-01-01", "--to", "2025-06-01"], as(tenantKey));
    expect(badRange.code).not.toBe(0);
    expect(badRange.stderr).toContain("invalid_argument");
  });

  it("a daily limit set with the platform key refuses the next run with QUOTA_EXCEEDED; tenants cannot raise it", {
    timeout: CLI_TEST_TIMEOUT_MS,
  }, async () => {
    const denied = await nexus(["quota", "set", "--tenant", tenantId, "--daily-runs", "1000"], as(tenantKey));
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain("permission_denied");
    const set = await nexus(["quota", "set", "--tenant", tenantId, "--daily-runs", "1", "--soft-cap", "0.5"], as(mesh.platformKey));
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/daily runs\s+1/);
    const err = await run(tenant, "Who changes quotas?").then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("QUOTA_EXCEEDED");
    expect(errorMetadata(err)).toMatchObject({ period: "day", limit: "1", used: "1" });
    const got = await nexus(["quota", "get", "--json"], as(tenantKey));
    const quota = JSON.parse(got.stdout) as { quota: { source: string; limits: { dailyRuns: string } } };
    expect(quota.quota).toMatchObject({ source: "QUOTA_SOURCE_CUSTOM", limits: { dailyRuns: "1" } });
  });

  it("keeps a verifiable audit trail of the tenant's actions, listed, exported and verified by the CLI", {
    timeout: CLI_TEST_TIMEOUT_MS,
  }, async () => {
    const expected = [
      "auth.api_key.created",
      "corpora.created",
      "documents.ingest.enqueued",
      "run.invoked",
      "billing.usage_recorded",
      "quota.updated",
      "quota.hard_cap_blocked",
    ];
    await eventually("the audit entries", async () => {
      const seen = (await tenant.audit.listAuditEvents({ pageSize: 500 })).events.map((e) => e.eventType);
      return expected.every((t) => seen.includes(t));
    });
    const listed = await nexus(["audit", "list", "--all", "--limit", "500", "--json"], as(tenantKey));
    const types = (JSON.parse(listed.stdout) as { events: Array<{ eventType: string }> }).events.map((e) => e.eventType);
    expect(types).toEqual(expect.arrayContaining([...expected, "quota.soft_cap_reached"]));
    const failures = await nexus(["audit", "list", "--outcome", "failure", "--type", "quota.hard_cap_blocked"], as(tenantKey));
    expect(failures.stdout).toContain("quota.hard_cap_blocked");

    const verify = await nexus(["audit", "verify"], as(tenantKey));
    expect(verify.code, verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/^ok: \d+ entries/);

    const file = `${files.dir}/audit.csv`;
    const exported = await nexus(["audit", "export", "--csv", "--output", file], as(tenantKey));
    expect(exported.code, exported.stderr).toBe(0);
    const csv = await readFile(file, "utf8");
    expect(csv.split("\r\n")[0]).toBe(
      "sequence,id,tenant_id,occurred_at,event_type,outcome,actor_kind,actor_key_id,actor_name,actor_role,action,resource_type,resource_id,request_id,correlation_id,before,after,metadata,source_event_id,prev_hash,hash",
    );
    expect(csv).not.toMatch(/nxs_[0-9a-f]+_[A-Za-z0-9_-]{20,}/);
    const offline = await nexus(["audit", "verify", "--file", file, "--tenant", tenantId], {});
    expect(offline.code, offline.stdout + offline.stderr).toBe(0);
    // The tenant is a column: the file verifies without being told, and not as another tenant's.
    const untold = await nexus(["audit", "verify", "--file", file], {});
    expect(untold.code, untold.stdout + untold.stderr).toBe(0);
    const mislabelled = await nexus(["audit", "verify", "--file", file, "--tenant", "someone-else"], {});
    expect(mislabelled.code).not.toBe(0);
    const forged = `${files.dir}/forged.csv`;
    await import("node:fs/promises").then((fs) => fs.writeFile(forged, csv.replace("quota.hard_cap_blocked", "quota.soft_cap_reached")));
    const broken = await nexus(["audit", "verify", "--file", forged, "--tenant", tenantId], {});
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain("hash_mismatch");
  });

  it("the audit log is closed to viewers and to plans without audit access", { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const viewer = await mesh.newTenant("pro", "viewer");
    const v = await nexus(["audit", "list"], as(viewer.key));
    expect(v.code).not.toBe(0);
    expect(v.stderr).toContain("RBAC_FORBIDDEN");
    const free = await mesh.newTenant("free", "owner");
    const f = await nexus(["audit", "verify"], as(free.key));
    expect(f.code).not.toBe(0);
    expect(f.stderr).toContain("FEATURE_NOT_ENABLED");
  });

  it("exports the run metrics dashboards use", { timeout: CLI_TEST_TIMEOUT_MS }, async () => {
    const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`nexus_run_units_total\\{org="${tenantId}",tier="pro"\\} [0-9.]*[1-9]`));
    expect(metrics).toMatch(new RegExp(`nexus_runs_total\\{org="${tenantId}",tier="pro",outcome="completed"\\} 1`));
    expect(metrics).toMatch(new RegExp(`nexus_quota_used_ratio\\{org="${tenantId}",period="day"\\} 1`));
  });
});
