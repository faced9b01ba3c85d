/**
 * Secrets never leak: a real `nexus serve --service auth` process (trace-level logs captured)
 * is driven through key creation, use, refusals, rotation and revocation; afterwards neither
 * its output, nor any row of the auth and platform tables, nor any message on the events
 * stream contains a plaintext key, a secret or an Authorization header value. Only SHA-256
 * digests are at rest.
 */
import { createHash } from "node:crypto";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { generateApiKey } from "../services/auth/domain/api-key-secret.js";
import { createNexusClient } from "../services/client/create-nexus-client.js";
import { connectNats } from "../services/kernel/events/nats-streams.js";
import { outcome } from "./support/auth-harness.js";
import { deleteSuiteStreams, suiteStreams } from "./support/nats-streams.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgresAndNats, TEST_NATS_URL, type TestDatabase, uniqueToken } from "./support/services.js";

describeWithPostgresAndNats("no plaintext secret in logs, events or tables", () => {
  let db: TestDatabase;
  let auth: NexusProcess;
  const token = uniqueToken("s").toUpperCase();
  const platform = generateApiKey();
  /** Every plaintext key the run handles. */
  const plaintexts: string[] = [platform.plaintext];
  /** The SCIM tokens the run issues (`nxscim_<token id>_<secret>`). */
  const scimTokens: string[] = [];
  let output = "";

  beforeAll(async () => {
    db = await createTestDatabase("nexus_secrets");
    auth = await startNexus({
      args: ["serve", "--service", "auth", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: db.url,
        NATS_URL: TEST_NATS_URL,
        NEXUS_SUBJECT_PREFIX: uniqueToken("sec"),
        NEXUS_NATS_STREAM: suiteStreams(token).stream,
        NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
        NEXUS_BOOTSTRAP_KEY_ID: platform.keyId,
        NEXUS_BOOTSTRAP_KEY_SHA256: Buffer.from(platform.digest).toString("hex"),
        OTEL_SDK_DISABLED: "true",
        LOG_LEVEL: "trace",
      },
    });
    const ops = createNexusClient({ baseUrl: auth.url, apiKey: platform.plaintext });
    const grpcOps = createNexusClient({ baseUrl: auth.url, apiKey: platform.plaintext, protocol: "grpc" });
    const { tenant } = await ops.auth.createTenant({ slug: uniqueToken("sec"), displayName: "Secrets", plan: Plan.PRO });
    const owner = await ops.auth.createApiKey({ tenantId: tenant!.id, name: "owner", role: Role.OWNER });
    plaintexts.push(owner.plaintextKey);
    const asOwner = createNexusClient({ baseUrl: auth.url, apiKey: owner.plaintextKey, useJson: true });
    const viewer = await asOwner.auth.createApiKey({ name: "viewer", role: Role.VIEWER });
    plaintexts.push(viewer.plaintextKey);
    await createNexusClient({ baseUrl: auth.url, apiKey: viewer.plaintextKey, protocol: "grpc" }).auth.whoAmI({});
    await outcome(() =>
      createNexusClient({ baseUrl: auth.url, apiKey: viewer.plaintextKey }).auth.setPlan({ tenantId: tenant!.id, plan: Plan.ENTERPRISE }),
    );
    // Refusals of every kind, with the secret in the Authorization header or the body.
    await outcome(() => createNexusClient({ baseUrl: auth.url, apiKey: `${viewer.plaintextKey.slice(0, -3)}xyz` }).auth.whoAmI({}));
    await outcome(() => createNexusClient({ baseUrl: auth.url, apiKey: `${viewer.plaintextKey} trailing` }).auth.whoAmI({}));
    await outcome(() => ops.auth.authenticate({ apiKey: `${owner.plaintextKey}0` }));
    await grpcOps.auth.authenticate({ apiKey: owner.plaintextKey });
    const rotated = await asOwner.auth.rotateApiKey({ keyId: viewer.apiKey!.id, gracePeriod: durationFromMs(0) });
    plaintexts.push(rotated.plaintextKey);
    await outcome(() => createNexusClient({ baseUrl: auth.url, apiKey: viewer.plaintextKey }).auth.whoAmI({}));
    await asOwner.auth.revokeApiKey({ keyId: rotated.apiKey!.id, reason: "done" });
    await outcome(() => createNexusClient({ baseUrl: auth.url, apiKey: rotated.plaintextKey, protocol: "grpc" }).auth.whoAmI({}));
    // SCIM: the tenant's directory token, issued twice (rotation), used, tampered with.
    await ops.auth.setPlan({ tenantId: tenant!.id, plan: Plan.ENTERPRISE });
    for (let i = 0; i < 2; i++) {
      const { token: scimToken } = await asOwner.identity.rotateScimToken({});
      scimTokens.push(scimToken);
      await fetch(`${auth.url}/scim/v2/Users?filter=${encodeURIComponent('userName eq "x@example.com"')}`, {
        headers: { authorization: `Bearer ${scimToken}` },
      });
      await fetch(`${auth.url}/scim/v2/Users`, { headers: { authorization: `Bearer ${scimToken.slice(0, -3)}xyz` } });
    }
    // A curl-style call with the header in JSON Connect.
    await fetch(`${auth.url}/nexus.auth.v1.AuthService/WhoAmI`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${owner.plaintextKey}` },
      body: "{}",
    });
    await auth.stop();
    output = auth.output();
  }, 120_000);

  afterAll(async () => {
    await auth?.stop();
    await deleteSuiteStreams(token);
    await db?.drop();
  });

  /**
   * The secret half of a key or SCIM token (after `nxs_<id>_` or `nxscim_<id>_`; ids hold no
   * `_`, secrets may: the secret is everything after the second `_`).
   */
  const secretOf = (plaintext: string) => plaintext.slice(plaintext.indexOf("_", plaintext.indexOf("_") + 1) + 1);

  function expectClean(text: string, where: string): void {
    // A short "secret" would match by chance: each is the whole random half.
    for (const x of [...plaintexts, ...scimTokens]) expect(secretOf(x).length).toBeGreaterThanOrEqual(32);
    for (const p of plaintexts) {
      expect(text.includes(p), `${where} contains a plaintext key`).toBe(false);
      expect(text.includes(secretOf(p)), `${where} contains a key's secret`).toBe(false);
    }
    for (const t of scimTokens) {
      expect(text.includes(t), `${where} contains a SCIM token`).toBe(false);
      expect(text.includes(secretOf(t)), `${where} contains a SCIM token's secret`).toBe(false);
    }
    expect(/Bearer\s+nx(s|scim)_[A-Za-z0-9]/i.test(text), `${where} contains an Authorization header value`).toBe(false);
  }

  it("the process logged the run (trace level), and no line holds a key, secret or Authorization value", () => {
    expect(output).toContain("nexus.auth.v1.AuthService/WhoAmI");
    expect(output).toContain("AUTH_UNAUTHORIZED");
    expect(output).toContain("AUTH_REVOKED_KEY");
    expectClean(output, "the process output");
  });

  it("the database holds only SHA-256 digests: no table row of auth or platform contains a key or secret", async () => {
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows: tables } = await client.query<{ schema: string; name: string }>(
        "SELECT table_schema AS schema, table_name AS name FROM information_schema.tables WHERE table_schema IN ('auth', 'platform') AND table_type = 'BASE TABLE'",
      );
      expect(tables.map((t) => `${t.schema}.${t.name}`)).toEqual(
        expect.arrayContaining(["auth.api_keys", "auth.tenants", "platform.events"]),
      );
      let dump = "";
      for (const t of tables) {
        const { rows } = await client.query<{ row: string }>(`SELECT t::text AS row FROM "${t.schema}"."${t.name}" t`);
        dump += rows.map((r) => r.row).join("\n");
      }
      expect(dump.length).toBeGreaterThan(1000);
      expectClean(dump, "the auth and platform tables");
      const { rows: digests } = await client.query<{ id: string; digest: string }>(
        "SELECT id, encode(secret_sha256, 'hex') AS digest FROM auth.api_keys",
      );
      for (const p of plaintexts) {
        const id = p.slice(4, p.indexOf("_", 4));
        expect(digests.find((d) => d.id === id)?.digest).toBe(createHash("sha256").update(p).digest("hex"));
      }
      // The tenant's SCIM token: the current one's digest only.
      const { rows: scim } = await client.query<{ token_id: string; digest: string }>(
        "SELECT token_id, encode(secret_sha256, 'hex') AS digest FROM auth.scim_tokens",
      );
      const current = scimTokens[scimTokens.length - 1]!;
      expect(scim).toEqual([{ token_id: current.split("_")[1], digest: createHash("sha256").update(current).digest("hex") }]);
    } finally {
      await client.end();
    }
  });

  it("no event on the NATS stream carries a key or secret", async () => {
    const nc = await connectNats({ servers: TEST_NATS_URL });
    try {
      const jsm = await jetstreamManager(nc);
      const info = await jsm.streams.info(`EVENTS_${token}`);
      expect(info.state.messages).toBeGreaterThan(5);
      let text = "";
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(`EVENTS_${token}`, { seq });
        if (!m) continue;
        text += `${m.subject} ${new TextDecoder().decode(m.data)}`;
        for (const k of m.header?.keys() ?? []) text += ` ${k}=${m.header.get(k)}`;
      }
      expect(text).toContain("auth.api_key_issued");
      expectClean(text, "the events stream");
    } finally {
      await nc.close();
    }
  });
});
