import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { type NexusClient, withIdempotencyKey } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import { describeWithPostgres } from "./support/services.js";

// Idempotency keys through a real `nexus dev` on PostgreSQL: what a client that retries a
// mutation sees, and what is stored (never a secret in plaintext).

async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describeWithPostgres("idempotency keys on mutating RPCs", () => {
  let mesh: AgentMesh;
  let admin: NexusClient;
  let tenantId: string;

  beforeAll(async () => {
    mesh = await startAgentMesh();
    const t = await mesh.newTenant("pro", "admin");
    tenantId = t.tenantId;
    admin = mesh.client(t.key);
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
  });

  it("answers a repeated request with the stored answer, marked idempotency-replayed, and runs it once", async () => {
    const key = `create-key-${Date.now()}`;
    let replayed: string | null = null;
    const first = await admin.auth.createApiKey({ name: "ci", role: Role.VIEWER }, withIdempotencyKey(key));
    const again = await admin.auth.createApiKey(
      { name: "ci", role: Role.VIEWER },
      { ...withIdempotencyKey(key), onHeader: (h) => (replayed = h.get("idempotency-replayed")) },
    );
    expect(replayed).toBe("true");
    expect(again.apiKey?.id).toBe(first.apiKey?.id);
    expect(again.plaintextKey).toBe(first.plaintextKey);
    const { apiKeys } = await admin.auth.listApiKeys({});
    expect(apiKeys.filter((k) => k.name === "ci")).toHaveLength(1);
  });

  it("replays over gRPC as well", async () => {
    const grpc = mesh.client((await admin.auth.createApiKey({ name: "grpc admin", role: Role.ADMIN })).plaintextKey, { protocol: "grpc" });
    const key = `grpc-${Date.now()}`;
    const first = await grpc.auth.createApiKey({ name: "over grpc", role: Role.VIEWER }, withIdempotencyKey(key));
    let replayed: string | null = null;
    const again = await grpc.auth.createApiKey(
      { name: "over grpc", role: Role.VIEWER },
      { ...withIdempotencyKey(key), onHeader: (h) => (replayed = h.get("idempotency-replayed")) },
    );
    expect(replayed).toBe("true");
    expect(again.apiKey?.id).toBe(first.apiKey?.id);
  });

  it("never stores a secret in plaintext", async () => {
    const res = await admin.auth.createApiKey({ name: "secret-check", role: Role.VIEWER }, withIdempotencyKey(`secret-${Date.now()}`));
    const { rows } = await mesh.db.query<{ response: Buffer }>("SELECT response FROM platform.idempotency_keys WHERE response IS NOT NULL");
    expect(rows.length).toBeGreaterThan(0);
    const secret = Buffer.from(res.plaintextKey);
    for (const r of rows) expect(r.response.includes(secret)).toBe(false);
  });

  it("refuses the same key with a different request: ALREADY_EXISTS IDEMPOTENCY_KEY_CONFLICT", async () => {
    const key = `conflict-${Date.now()}`;
    await admin.auth.createApiKey({ name: "one", role: Role.VIEWER }, withIdempotencyKey(key));
    const err = await failure(() => admin.auth.createApiKey({ name: "two", role: Role.VIEWER }, withIdempotencyKey(key)));
    expect(err.code).toBe(Code.AlreadyExists);
    expect(errorReason(err)).toBe("IDEMPOTENCY_KEY_CONFLICT");
  });

  it("runs concurrent duplicates once: the others wait and get the same answer", async () => {
    const key = `concurrent-${Date.now()}`;
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => admin.auth.createApiKey({ name: "burst", role: Role.VIEWER }, withIdempotencyKey(key))),
    );
    expect(new Set(answers.map((a) => a.apiKey?.id)).size).toBe(1);
    const { apiKeys } = await admin.auth.listApiKeys({});
    expect(apiKeys.filter((k) => k.name === "burst")).toHaveLength(1);
  });

  it("stores nothing for a failed call: the retry runs again", async () => {
    const key = `failed-${Date.now()}`;
    const err = await failure(() => admin.auth.revokeApiKey({ keyId: "000000000000000000000000" }, withIdempotencyKey(key)));
    expect(err.code).toBe(Code.NotFound);
    const again = await failure(() => admin.auth.revokeApiKey({ keyId: "000000000000000000000000" }, withIdempotencyKey(key)));
    expect(again.code).toBe(Code.NotFound);
  });

  it("refuses a malformed key, and a key on a streaming RPC, with INVALID_ARGUMENT", async () => {
    const bad = await failure(() => admin.auth.createApiKey({ name: "x", role: Role.VIEWER }, withIdempotencyKey("a".repeat(129))));
    expect(bad.code).toBe(Code.InvalidArgument);
    expect(errorReason(bad)).toBe("INVALID_IDEMPOTENCY_KEY");
    const ctrl = await failure(() => admin.auth.createApiKey({ name: "x", role: Role.VIEWER }, withIdempotencyKey("tab\there")));
    expect(errorReason(ctrl)).toBe("INVALID_IDEMPOTENCY_KEY");
    const stream = await failure(async () => {
      for await (const _ of admin.agent.run({ corpusId: "none", message: "hi" }, withIdempotencyKey("run-1")));
    });
    expect(stream.code).toBe(Code.InvalidArgument);
    expect(errorReason(stream)).toBe("IDEMPOTENCY_NOT_SUPPORTED");
  });

  it("scopes keys to the API key: another key of the tenant using the same idempotency key runs its own call", async () => {
    const key = `scoped-${Date.now()}`;
    const a = await admin.auth.createApiKey({ name: "scoped", role: Role.VIEWER }, withIdempotencyKey(key));
    const other = mesh.client((await admin.auth.createApiKey({ name: "second admin", role: Role.ADMIN })).plaintextKey);
    const b = await other.auth.createApiKey({ name: "scoped", role: Role.VIEWER }, withIdempotencyKey(key));
    expect(b.apiKey?.id).not.toBe(a.apiKey?.id);
    void tenantId;
  });
});
