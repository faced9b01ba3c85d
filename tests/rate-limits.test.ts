import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { describeWithPostgres } from "./support/services.js";

// Rate limits through a real `nexus dev` on PostgreSQL (buckets in platform.rate_buckets):
// small allowances so a test can exhaust them, refusals as a client sees them on gRPC and
// Connect JSON, and the check order (a refused run consumes no quota).

async function newKey(mesh: AgentMesh, tenantId: string, role: Role): Promise<string> {
  const res = await mesh.client(mesh.platformKey).auth.createApiKey({ tenantId, name: `key-${role}-${Date.now()}`, role });
  return res.plaintextKey;
}

async function refusal(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    const r = await call();
    if (r && typeof r === "object" && Symbol.asyncIterator in r) for await (const _ of r as AsyncIterable<unknown>);
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

describeWithPostgres("rate limits (token buckets per API key and per tenant)", () => {
  let mesh: AgentMesh;
  let tenant: { tenantId: string; key: string };
  let client: NexusClient;

  beforeAll(async () => {
    mesh = await startAgentMesh({
      NEXUS_RATE_LIMIT_ENABLED: "true",
      // read: 3 per key then 1 every 2 s; the tenant allows 5. run: 2 per key, then 1 every 2 s.
      NEXUS_RATE_LIMITS: "read=0.5/3:0.5/5,run=0.5/2:0.5/10,mutation=100/100:100/100",
    });
    tenant = await mesh.newTenant("pro");
    client = mesh.client(tenant.key);
    await ingestCorpus(client, "kb", [{ id: "doc", text: "Rate limits protect every tenant from a noisy neighbour." }]);
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
  });

  it("refuses the call past a key's burst with RESOURCE_EXHAUSTED RATE_LIMITED, RetryInfo and retry-after", async () => {
    // ingestCorpus made reads too; drain the key's read bucket.
    let err: ConnectError | undefined;
    for (let i = 0; i < 10 && err === undefined; i++) {
      try {
        await client.retrieval.listCorpora({});
      } catch (e) {
        err = ConnectError.from(e);
      }
    }
    expect(err?.code).toBe(Code.ResourceExhausted);
    expect(errorReason(err)).toBe("RATE_LIMITED");
    expect(errorMetadata(err)).toMatchObject({ scope: "api_key", route_class: "read" });
    expect(err!.message).toMatch(/API key may make 0.5 read calls a second/);
    const retry = err!.findDetails(RetryInfoSchema)[0]?.retryDelay;
    expect(Number(retry?.seconds ?? 0) * 1000 + (retry?.nanos ?? 0) / 1e6).toBeGreaterThan(0);
    expect(Number(err!.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(err!.metadata.get("x-ratelimit-route-class")).toBe("read");
  });

  it("answers HTTP 429 with retry-after to a Connect JSON client, and the tenant's bucket binds across its keys", async () => {
    const other = await newKey(mesh, tenant.tenantId, Role.VIEWER);
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 8; i++) {
      last = await fetch(`${mesh.url}/nexus.retrieval.v1.RetrievalService/ListCorpora`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${other}` },
        body: "{}",
      });
      statuses.push(last.status);
      if (last.status === 429) break;
    }
    expect(statuses.at(-1)).toBe(429);
    expect(Number(last!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    const body = (await last!.json()) as { code: string; details?: unknown[] };
    expect(body.code).toBe("resource_exhausted");
    // The second key's own bucket (burst 3) was not empty: the tenant's (burst 5) refused it.
    expect(last!.headers.get("x-ratelimit-scope")).toBe("tenant");
  });

  it("a rate-limited run consumes no quota (checked before metering reserves any)", async () => {
    const runner = mesh.client(await newKey(mesh, tenant.tenantId, Role.EDITOR));
    const run = async (): Promise<Headers> => {
      let headers = new Headers();
      for await (const _ of runner.agent.run(
        { corpusId: "kb", message: "What do rate limits protect?" },
        { onHeader: (h) => (headers = h) },
      ));
      return headers;
    };
    const first = await run();
    const used = Number(first.get("x-nexus-quota-day-used"));
    expect(used).toBeGreaterThanOrEqual(1);
    await run(); // the key's run burst is 2
    const refused = await refusal(run);
    expect(errorReason(refused)).toBe("RATE_LIMITED");
    expect(errorMetadata(refused).route_class).toBe("run");
    await new Promise((r) => setTimeout(r, Number(refused.metadata.get("x-ratelimit-retry-after-ms")) + 100));
    const after = await run();
    // Three runs passed and reserved quota; the refused one reserved nothing.
    expect(Number(after.get("x-nexus-quota-day-used"))).toBe(used + 2);
  });
});
