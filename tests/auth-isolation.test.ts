/**
 * Tenant isolation across the whole mesh, enumerated from the generated service descriptors:
 * every RPC of every service — including any added later, with no change here — is proven to
 * (1) refuse a call without a key (UNAUTHENTICATED), (2) refuse a tenant key naming another
 * tenant in `tenant_id` (PERMISSION_DENIED TENANT_MISMATCH) and (3) refuse tenant keys, even
 * an owner's, on platform-only RPCs (PERMISSION_DENIED). Plus: another tenant's auth
 * resources are NOT_FOUND, never "forbidden".
 */
import { create, type DescMethod, type DescService } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { NEXUS_SERVICES } from "../services/kernel/authz/all-services.js";
import { PERMISSIONS, procedureOf } from "../services/kernel/authz/permissions.js";
import { TENANT_ID_FIELD } from "../services/kernel/authz/request-tenant.js";
import { type AuthHarness, failure, outcome, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

const rpcs = NEXUS_SERVICES.flatMap((service) =>
  service.methods.map((method) => ({ service, method, procedure: procedureOf(service.typeName, method.name) })),
);

/** A request message for `method` with `tenant_id` set (oneof included) when it has one. */
function requestFor(method: DescMethod, tenantId?: string) {
  const message = create(method.input) as unknown as Record<string, unknown>;
  const field = method.input.fields.find((f) => f.name === TENANT_ID_FIELD);
  if (field && tenantId !== undefined) {
    if (field.oneof) message[field.oneof.localName] = { case: field.localName, value: tenantId };
    else message[field.localName] = tenantId;
  }
  return message;
}

/** Calls any RPC generically, whatever its streaming kind. */
function call(transport: Transport, service: DescService, method: DescMethod, tenantId?: string): Promise<string> {
  const client = createClient(service, transport) as unknown as Record<string, (input: unknown) => unknown>;
  const fn = client[method.localName]!;
  const request = requestFor(method, tenantId);
  switch (method.methodKind) {
    case "client_streaming":
      return outcome(
        () =>
          fn(
            (async function* () {
              yield request;
            })(),
          ) as Promise<unknown>,
      );
    case "bidi_streaming":
      return outcome(async () =>
        fn(
          (async function* () {
            yield request;
          })(),
        ),
      );
    case "server_streaming":
      return outcome(async () => fn(request));
    default:
      return outcome(() => fn(request) as Promise<unknown>);
  }
}

describeWithPostgres("tenant isolation, for every RPC of every service", () => {
  let h: AuthHarness;
  let a: Awaited<ReturnType<AuthHarness["tenant"]>>;
  let b: Awaited<ReturnType<AuthHarness["tenant"]>>;
  beforeAll(async () => {
    // Hundreds of refused calls from one address by design: the refused-authentication limiter
    // (tests/auth-attempt-limits.test.ts) would answer AUTH_RATE_LIMITED to most of them.
    h = await startAuthHarness({ env: { NEXUS_AUTH_ATTEMPT_BURST: "0" } });
    a = await h.tenant();
    b = await h.tenant();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("covers the services the contracts define", () => {
    expect(NEXUS_SERVICES.map((s) => s.typeName).sort()).toEqual([
      "nexus.agent.v1.AgentService",
      "nexus.audit.v1.AuditService",
      "nexus.auth.v1.AuthService",
      "nexus.eventstore.v1.EventStoreService",
      "nexus.governance.v1.GovernanceService",
      "nexus.identity.v1.IdentityService",
      "nexus.ingestion.v1.IngestionService",
      "nexus.integration.v1.EdgeService",
      "nexus.integration.v1.IntegrationService",
      "nexus.metering.v1.MeteringService",
      "nexus.modules.v1.ModulesService",
      "nexus.retrieval.v1.RetrievalService",
    ]);
    expect(rpcs.length).toBeGreaterThanOrEqual(40);
  });

  it("without a key, every RPC is UNAUTHENTICATED (except the public Authenticate)", async () => {
    const transport = h.client().transport;
    const results: Record<string, string> = {};
    for (const { service, method, procedure } of rpcs) results[procedure] = await call(transport, service, method, a.tenant.id);
    for (const [procedure, result] of Object.entries(results)) {
      if (PERMISSIONS[procedure]?.class === "public") expect(result, procedure).not.toMatch(/^Unauthenticated AUTH_UNAUTHORIZED$/);
      else expect(result, procedure).toBe("Unauthenticated AUTH_UNAUTHORIZED");
    }
    // Authenticate answers for the key in its body, never for the caller.
    expect(results["/nexus.auth.v1.AuthService/Authenticate"]).toMatch(/^InvalidArgument/);
  });

  it("health and reflection stay open without a key (probes and tooling)", async () => {
    const res = await fetch(`${h.url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ service: "nexus.auth.v1.AuthService" }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "SERVING" });
  });

  it("with a garbage or wrong key, every RPC is UNAUTHENTICATED", async () => {
    const wrong = `${a.ownerKey.slice(0, -4)}AAAA` === a.ownerKey ? `${a.ownerKey.slice(0, -4)}BBBB` : `${a.ownerKey.slice(0, -4)}AAAA`;
    for (const key of ["garbage", wrong]) {
      const transport = h.client(key).transport;
      for (const { service, method, procedure } of rpcs) {
        if (PERMISSIONS[procedure]?.class === "public") continue;
        expect(await call(transport, service, method), `${key === "garbage" ? "garbage" : "wrong secret"} → ${procedure}`).toBe(
          "Unauthenticated AUTH_UNAUTHORIZED",
        );
      }
    }
  });

  it("a tenant key naming another tenant's id is PERMISSION_DENIED (TENANT_MISMATCH where the role suffices)", async () => {
    const transport = h.client(a.ownerKey).transport;
    const withTenant = rpcs.filter(({ method }) => method.input.fields.some((f) => f.name === TENANT_ID_FIELD));
    expect(withTenant.length).toBeGreaterThan(10);
    for (const { service, method, procedure } of withTenant) {
      const result = await call(transport, service, method, b.tenant.id);
      const platformOnly = PERMISSIONS[procedure]?.class === "platform";
      expect(result, procedure).toBe(platformOnly ? "PermissionDenied RBAC_FORBIDDEN" : "PermissionDenied TENANT_MISMATCH");
    }
  });

  it("platform-only RPCs are PERMISSION_DENIED for every tenant role, owner included", async () => {
    const platformOnly = rpcs.filter(({ procedure }) => PERMISSIONS[procedure]?.class === "platform");
    expect(platformOnly.map((r) => r.method.name)).toEqual(
      expect.arrayContaining([
        "CreateTenant",
        "ListTenants",
        "SuspendTenant",
        "ResumeTenant",
        "SetPlan",
        "SetEntitlementOverrides",
        "UpdateTenant",
        "SetQuota",
      ]),
    );
    for (const role of [Role.OWNER, Role.ADMIN, Role.EDITOR, Role.VIEWER]) {
      const key = await h.key(a.tenant.id, role, `iso-${role}`);
      const transport = h.client(key.plaintext).transport;
      for (const { service, method, procedure } of platformOnly) {
        expect(await call(transport, service, method, a.tenant.id), `${Role[role]} → ${procedure}`).toBe("PermissionDenied RBAC_FORBIDDEN");
      }
    }
  });

  it("another tenant's keys and tenant are NOT_FOUND, never forbidden", async () => {
    const admin = h.client(a.ownerKey).auth;
    const other = await h.key(b.tenant.id, Role.VIEWER, "b-viewer");
    const platformKeyId = (await h.client(h.platformKey).auth.whoAmI({})).principal!.keyId;
    for (const keyId of [other.id, b.ownerKeyId, platformKeyId]) {
      for (const attempt of [
        () => admin.getApiKey({ keyId }),
        () => admin.revokeApiKey({ keyId }),
        () => admin.rotateApiKey({ keyId }),
        () => admin.reactivateApiKey({ keyId }),
        () => admin.setApiKeyRole({ keyId, role: Role.VIEWER }),
      ]) {
        expect(await failure(attempt), keyId).toMatchObject({ code: "NotFound" });
      }
    }
    expect(await failure(() => admin.getTenant({ selector: { case: "slug", value: b.tenant.slug } }))).toMatchObject({ code: "NotFound" });
    expect((await admin.getTenant({ selector: { case: "slug", value: a.tenant.slug } })).tenant?.id).toBe(a.tenant.id);
    const listed = await admin.listApiKeys({});
    expect(listed.apiKeys.every((k) => k.tenantId === a.tenant.id)).toBe(true);
    expect(await failure(() => admin.listApiKeys({ platformKeys: true }))).toMatchObject({ code: "PermissionDenied" });
    // The other tenant's key still works: nothing above touched it.
    expect((await h.client(other.plaintext).auth.whoAmI({})).principal?.tenantId).toBe(b.tenant.id);
  });

  it("platform keys must name the tenant on tenant-scoped auth RPCs", async () => {
    const ops = h.client(h.platformKey).auth;
    expect(await failure(() => ops.listApiKeys({}))).toMatchObject({ code: "InvalidArgument" });
    expect(await failure(() => ops.createApiKey({ name: "x", role: Role.VIEWER }))).toMatchObject({ code: "InvalidArgument" });
    expect((await ops.listApiKeys({ tenantId: b.tenant.id })).apiKeys.every((k) => k.tenantId === b.tenant.id)).toBe(true);
  });
});
