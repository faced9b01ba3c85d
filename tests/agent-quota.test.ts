import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunResponse } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { HardCapMode, Period } from "../gen/nexus/metering/v1/quota_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { describeWithPostgres } from "./support/services.js";

// Run and metering together through `nexus dev`: every run reserves quota with CheckQuota
// before it is accepted; the quota state comes back in response headers; a run over the
// hard limit is refused with RESOURCE_EXHAUSTED QUOTA_EXCEEDED and nothing is stored.

const DOC = "To rotate an API key, run nexus keys rotate with the key id. The old key keeps working for the grace period.";

async function runWithHeaders(client: NexusClient, message: string): Promise<{ events: RunResponse[]; headers: Headers }> {
  let headers = new Headers();
  const events: RunResponse[] = [];
  for await (const r of client.agent.run({ corpusId: "kb", message }, { onHeader: (h) => (headers = h) })) events.push(r);
  return { events, headers };
}

describeWithPostgres("agent quota checks (metering CheckQuota)", () => {
  let mesh: AgentMesh;
  let tenant: { tenantId: string; key: string };
  let client: NexusClient;

  beforeAll(async () => {
    mesh = await startAgentMesh({ NEXUS_AGENT_QUOTA_FAIL_OPEN: "false" });
    tenant = await mesh.newTenant("pro");
    client = mesh.client(tenant.key);
    await ingestCorpus(client, "kb", [{ id: "keys", text: DOC }]);
    await mesh.client(mesh.platformKey).metering.setQuota({
      tenantId: tenant.tenantId,
      dailyRunsLimit: 2n,
      softCapRatio: 0.8,
      hardCapMode: HardCapMode.ENFORCE,
    });
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
  });

  it("reports the quota state in response headers and refuses the run over the limit", async () => {
    const first = await runWithHeaders(client, "How do I rotate an API key?");
    expect(first.events.at(-1)?.event.case).toBe("done");
    expect(first.headers.get("x-nexus-quota-decision")).toBe("allowed");
    expect(first.headers.get("x-nexus-quota-day-limit")).toBe("2");
    expect(first.headers.get("x-nexus-quota-day-used")).toBe("1");
    expect(first.headers.get("x-nexus-quota-day-remaining")).toBe("1");
    expect(first.headers.get("x-nexus-quota-day-reset")).toMatch(/^\d{4}-\d{2}-\d{2}T00:00:00\.000Z$/);

    const second = await runWithHeaders(client, "How long is the grace period?");
    expect(second.headers.get("x-nexus-quota-decision")).toBe("allowed_soft_cap");
    expect(second.headers.get("x-nexus-quota-day-remaining")).toBe("0");

    let refused: ConnectError | undefined;
    let refusedHeaders = new Headers();
    try {
      await runWithHeaders(client, "And one more question?");
    } catch (err) {
      refused = ConnectError.from(err);
      refusedHeaders = refused.metadata;
    }
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(errorReason(refused)).toBe("QUOTA_EXCEEDED");
    const meta = errorMetadata(refused);
    expect(meta.period?.toLowerCase()).toContain("day");
    expect(meta.limit).toBe("2");
    expect(meta.used).toBe("2");
    expect(refusedHeaders.get("x-nexus-quota-decision")).toBe("refused");
    expect(refusedHeaders.get("x-nexus-quota-day-limit")).toBe("2");

    // The refused run was never accepted: no session or message of it exists.
    const { sessions } = await client.agent.listSessions({});
    expect(sessions).toHaveLength(2);
    expect(sessions.map((s) => s.title)).not.toContain("And one more question?");
  });

  it("metering turns the runs' RunCompleted events into usage", async () => {
    let totals:
      | { runsCompleted: bigint; toolCalls: bigint; inputTokens: bigint; outputTokens: bigint; cpuSeconds: number; gpuSeconds: number }
      | undefined;
    await eventually("metering to count the two completed runs", async () => {
      totals = (await client.metering.getUsageSummary({ period: Period.DAY })).totals;
      return totals?.runsCompleted === 2n;
    });
    expect(totals?.toolCalls).toBe(2n);
    expect(totals?.inputTokens).toBeGreaterThan(0n);
    expect(totals?.outputTokens).toBeGreaterThan(0n);
    expect(totals?.cpuSeconds).toBeGreaterThanOrEqual(0);
    expect(totals?.gpuSeconds).toBe(0);
  });

  it("another tenant's quota is its own", async () => {
    const other = await mesh.newTenant("pro");
    const otherClient = mesh.client(other.key);
    await ingestCorpus(otherClient, "kb", [{ id: "keys", text: DOC }]);
    const run = await runWithHeaders(otherClient, "How do I rotate an API key?");
    expect(run.events.at(-1)?.event.case).toBe("done");
    expect(run.headers.get("x-nexus-quota-decision")).toBe("allowed");
  });
  it("a reused x-request-id neither gets past the hard cap nor escapes metering", async () => {
    const reuser = await mesh.newTenant("pro");
    const reuserClient = mesh.client(reuser.key);
    await ingestCorpus(reuserClient, "kb", [{ id: "keys", text: DOC }]);
    await mesh
      .client(mesh.platformKey)
      .metering.setQuota({ tenantId: reuser.tenantId, dailyRunsLimit: 2n, softCapRatio: 0.8, hardCapMode: HardCapMode.ENFORCE });
    const runIds: string[] = [];
    for (let i = 0; i < 2; i++) {
      let echoed: string | null = null;
      const events: RunResponse[] = [];
      for await (const r of reuserClient.agent.run(
        { corpusId: "kb", message: "How do I rotate an API key?" },
        { headers: { "x-request-id": "my-favourite-id" }, onHeader: (h) => (echoed = h.get("x-request-id")) },
      )) {
        events.push(r);
      }
      expect(events.at(-1)?.event.case).toBe("done");
      // The client's id stays a correlation id; the run's id is the server's.
      expect(echoed).toBe("my-favourite-id");
      const first = events[0]?.event;
      if (first?.case !== "accepted") throw new Error("expected accepted first");
      expect(first.value.requestId).not.toBe("my-favourite-id");
      runIds.push(first.value.requestId);
    }
    expect(new Set(runIds).size).toBe(2);
    let refused: ConnectError | undefined;
    try {
      for await (const _ of reuserClient.agent.run(
        { corpusId: "kb", message: "And again?" },
        { headers: { "x-request-id": "my-favourite-id" } },
      ))
        void _;
    } catch (err) {
      refused = ConnectError.from(err);
    }
    expect(refused?.code).toBe(Code.ResourceExhausted);
    expect(errorReason(refused)).toBe("QUOTA_EXCEEDED");
    await eventually(
      "metering to count both runs",
      async () => (await reuserClient.metering.getUsageSummary({ period: Period.DAY })).totals?.runsCompleted === 2n,
    );
  });
});
