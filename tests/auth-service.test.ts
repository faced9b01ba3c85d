/**
 * The auth service end to end, in one process on a real PostgreSQL database: tenants, plans,
 * entitlements, API key lifecycle (rotation grace, inactivity, caps), suspension, the role
 * matrix, and the audit events. Time-dependent behaviour uses an injected clock, never sleeps.
 */
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { ApiKeyStatus, PrincipalKind, Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { Plan, TenantStatus } from "../gen/nexus/auth/v1/tenant_pb.js";
import { type AuthHarness, failure, outcome, passedAuthorization, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

const DAY = 86_400_000;

describeWithPostgres("auth service", () => {
  let h: AuthHarness;
  beforeAll(async () => {
    h = await startAuthHarness({
      env: { NEXUS_API_KEY_INACTIVE_DAYS: "30", NEXUS_MAX_ACTIVE_API_KEYS: "8", NEXUS_AUTH_CACHE_TTL_MS: "600000" },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  describe("tenants and plans", () => {
    it("creates tenants with unique slugs, and lists them for platform keys only", async () => {
      const ops = h.client(h.platformKey);
      const { tenant, ownerKey } = await h.tenant(Plan.FREE);
      expect(tenant).toMatchObject({ plan: Plan.FREE, status: TenantStatus.ACTIVE });
      expect(await failure(() => ops.auth.createTenant({ slug: tenant.slug, displayName: "Again", plan: Plan.PRO }))).toMatchObject({
        code: "AlreadyExists",
      });
      const listed = await ops.auth.listTenants({ pageSize: 200 });
      expect(listed.tenants.map((t) => t.id)).toContain(tenant.id);
      expect(await failure(() => h.client(ownerKey).auth.listTenants({}))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
    });

    it("a tenant's own owner can never change its plan, overrides or quotas", async () => {
      const { tenant, ownerKey } = await h.tenant(Plan.FREE);
      const owner = h.client(ownerKey);
      for (const call of [
        () => owner.auth.setPlan({ tenantId: tenant.id, plan: Plan.ENTERPRISE }),
        () =>
          owner.auth.setEntitlementOverrides({
            tenantId: tenant.id,
            overrides: { features: [{ featureKey: "feature.tts", enabled: true }] },
          }),
        () => owner.auth.suspendTenant({ tenantId: tenant.id }),
        () => owner.metering.setQuota({ tenantId: tenant.id }),
        () => owner.auth.createTenant({ slug: "sneaky", displayName: "x", plan: Plan.ENTERPRISE }),
        () =>
          owner.auth.updateTenant({ tenantId: tenant.id, displayName: "Renamed by its owner", updateMask: { paths: ["display_name"] } }),
      ]) {
        expect(await failure(call)).toMatchObject({ code: "PermissionDenied", reason: "RBAC_FORBIDDEN" });
      }
      const me = await owner.auth.whoAmI({});
      expect(me.principal?.plan).toBe(Plan.FREE);
    });

    it("plan changes and overrides reach the principal at once (cached answers are dropped)", async () => {
      const ops = h.client(h.platformKey);
      const { tenant, ownerKey } = await h.tenant(Plan.FREE);
      const owner = h.client(ownerKey);
      const features = async () =>
        (await owner.auth.whoAmI({})).principal?.entitlements?.features.filter((f) => f.enabled).map((f) => f.key);
      expect(await features()).toEqual(["feature.retrieval.local_pgvector"]);
      expect((await owner.auth.whoAmI({})).principal?.entitlements?.monthlyRunAllowance).toBe(100n);
      await ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.PRO });
      expect(await features()).toContain("feature.tts");
      const updated = await ops.auth.setEntitlementOverrides({
        tenantId: tenant.id,
        overrides: {
          features: [
            { featureKey: "feature.tts", enabled: false },
            { featureKey: "feature.identity.scim", enabled: true },
          ],
          unlimitedRuns: true,
        },
      });
      expect(updated.tenant?.entitlements?.features.find((f) => f.key === "feature.identity.scim")).toMatchObject({
        enabled: true,
        source: 2,
      });
      expect(await features()).toContain("feature.identity.scim");
      expect(await features()).not.toContain("feature.tts");
      expect((await owner.auth.whoAmI({})).principal?.entitlements?.monthlyRunAllowance).toBeUndefined();
      expect(
        await failure(() =>
          ops.auth.setEntitlementOverrides({
            tenantId: tenant.id,
            overrides: { features: [{ featureKey: "feature.nope", enabled: true }] },
          }),
        ),
      ).toMatchObject({
        code: "InvalidArgument",
      });
      const events = await h.events("PlanChanged");
      expect(events.some((e) => (e.payload as { tenantId: string }).tenantId === tenant.id)).toBe(true);
    });

    it("UpdateTenant renames a tenant once (idempotent), records the change, and refuses bad names and unknown tenants", async () => {
      const ops = h.client(h.platformKey);
      const { tenant, ownerKey } = await h.tenant(Plan.FREE);
      const rename = (displayName: string, paths = ["display_name"], tenantId = tenant.id) =>
        ops.auth.updateTenant({ tenantId, displayName, updateMask: { paths } });
      h.clock.advance(1_000);
      const renamed = await rename("Acme Research");
      expect(renamed.tenant).toMatchObject({
        id: tenant.id,
        slug: tenant.slug,
        displayName: "Acme Research",
        plan: Plan.FREE,
        status: TenantStatus.ACTIVE,
      });
      expect(renamed.tenant?.updatedAt?.seconds).toBeGreaterThan(tenant.updatedAt?.seconds ?? 0n);
      // Every reader sees the new name: the platform and the tenant's own members.
      expect((await ops.auth.getTenant({ selector: { case: "tenantId", value: tenant.id } })).tenant?.displayName).toBe("Acme Research");
      expect((await h.client(ownerKey).auth.getTenant({ selector: { case: "slug", value: tenant.slug } })).tenant?.displayName).toBe(
        "Acme Research",
      );

      // The same name again changes nothing: same updated_at, no second event.
      h.clock.advance(1_000);
      const again = await rename("Acme Research");
      expect(again.tenant?.updatedAt).toEqual(renamed.tenant?.updatedAt);
      const changes = (await h.events("TenantDisplayNameChanged")).filter((e) => e.streamId === `tenant-${tenant.id}`);
      expect(changes.map((e) => e.payload)).toEqual([
        { tenantId: tenant.id, previousDisplayName: "Test tenant", displayName: "Acme Research" },
      ]);
      expect(changes[0]?.topic).toBe("auth.tenant_display_name_changed");

      for (const bad of [() => rename(""), () => rename("x".repeat(201)), () => rename("Acme", []), () => rename("Acme", ["slug"])]) {
        expect(await failure(bad)).toMatchObject({ code: "InvalidArgument", reason: "VALIDATION_FAILED" });
      }
      expect(await failure(() => rename("Nobody", ["display_name"], "no-such-tenant"))).toMatchObject({
        code: "NotFound",
        reason: "NOT_FOUND",
      });
      expect((await ops.auth.getTenant({ selector: { case: "tenantId", value: tenant.id } })).tenant?.displayName).toBe("Acme Research");
    });

    it("a disabled feature is PERMISSION_DENIED FEATURE_NOT_ENABLED with the feature key, recorded once", async () => {
      const ops = h.client(h.platformKey);
      const { tenant, ownerKey, ownerKeyId } = await h.tenant(Plan.FREE);
      const before = (await h.events("RbacForbidden")).length;
      expect(await failure(() => h.client(ownerKey).audit.listAuditEvents({}))).toMatchObject({
        code: "PermissionDenied",
        reason: "FEATURE_NOT_ENABLED",
        metadata: { feature_key: "feature.audit_access" },
      });
      const recorded = (await h.events("RbacForbidden")).slice(before);
      expect(recorded).toHaveLength(1);
      expect(recorded[0]?.payload).toMatchObject({ keyId: ownerKeyId, reason: "FEATURE_NOT_ENABLED", featureKey: "feature.audit_access" });
      await ops.auth.setEntitlementOverrides({
        tenantId: tenant.id,
        overrides: { features: [{ featureKey: "feature.audit_access", enabled: true }] },
      });
      expect(passedAuthorization(await outcome(() => h.client(ownerKey).audit.listAuditEvents({})))).toBe(true);
    });
  });

  describe("API keys", () => {
    it("returns the plaintext once, lists metadata only, and revokes idempotently (same revoked_at)", async () => {
      const { tenant, ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      const created = await owner.auth.createApiKey({ name: "ci-bot", role: Role.EDITOR });
      expect(created.plaintextKey).toMatch(new RegExp(`^nxs_${created.apiKey!.id}_[A-Za-z0-9_-]{43}$`));
      expect(created.apiKey).toMatchObject({
        tenantId: tenant.id,
        role: Role.EDITOR,
        status: ApiKeyStatus.ACTIVE,
        displayPrefix: `nxs_${created.apiKey!.id}_`,
      });
      const listed = await owner.auth.listApiKeys({});
      expect(
        JSON.stringify(
          listed.apiKeys.map((k) => ({ ...k, createdAt: undefined })),
          (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v),
        ),
      ).not.toContain(created.plaintextKey.split("_").pop()!);
      expect(listed.apiKeys.map((k) => k.id)).toContain(created.apiKey!.id);

      const first = await owner.auth.revokeApiKey({ keyId: created.apiKey!.id, reason: "leaked" });
      const second = await owner.auth.revokeApiKey({ keyId: created.apiKey!.id, reason: "again" });
      expect(second.apiKey?.revokedAt).toEqual(first.apiKey?.revokedAt);
      expect(second.apiKey).toMatchObject({ status: ApiKeyStatus.REVOKED, revocationReason: "leaked" });
      expect(await failure(() => h.client(created.plaintextKey).auth.whoAmI({}))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_REVOKED_KEY",
      });
      const revoked = (await h.events("ApiKeyRevoked")).filter((e) => (e.payload as { keyId: string }).keyId === created.apiKey!.id);
      expect(revoked).toHaveLength(1);
      expect((await h.events("ApiKeyIssued")).some((e) => (e.payload as { keyId: string }).keyId === created.apiKey!.id)).toBe(true);
    });

    it("a revoked key is refused at once even when its answer was cached", async () => {
      const { ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      const k = await owner.auth.createApiKey({ name: "cached", role: Role.VIEWER });
      const viewer = h.client(k.plaintextKey);
      await viewer.auth.whoAmI({});
      await viewer.auth.whoAmI({});
      await owner.auth.revokeApiKey({ keyId: k.apiKey!.id });
      expect(await failure(() => viewer.auth.whoAmI({}))).toMatchObject({ reason: "AUTH_REVOKED_KEY" });
    });

    it("rotation: both keys work during the grace, then the old one is AUTH_REVOKED_KEY and its end is recorded", async () => {
      const { tenant, ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      const old = await owner.auth.createApiKey({ name: "svc", role: Role.EDITOR });
      const oldClient = h.client(old.plaintextKey);
      await oldClient.auth.whoAmI({});
      const rotated = await owner.auth.rotateApiKey({ keyId: old.apiKey!.id, gracePeriod: durationFromMs(3_600_000) });
      expect(rotated.previousApiKey).toMatchObject({ status: ApiKeyStatus.ROTATING, successorKeyId: rotated.apiKey!.id });
      expect(rotated.apiKey).toMatchObject({ name: "svc", role: Role.EDITOR, tenantId: tenant.id, predecessorKeyId: old.apiKey!.id });
      const successor = h.client(rotated.plaintextKey);
      h.clock.advance(3_599_000);
      // WhoAmI answers from the authentication it was cached with (no read of the key): the
      // rotation ended that answer at once, so the old key shows the rotation.
      expect(await oldClient.auth.whoAmI({})).toMatchObject({
        principal: { keyId: old.apiKey!.id },
        apiKey: { id: old.apiKey!.id, status: ApiKeyStatus.ROTATING, successorKeyId: rotated.apiKey!.id },
      });
      expect((await successor.auth.whoAmI({})).principal?.keyId).toBe(rotated.apiKey!.id);
      h.clock.advance(2_000);
      expect(await failure(() => oldClient.auth.whoAmI({}))).toMatchObject({ code: "Unauthenticated", reason: "AUTH_REVOKED_KEY" });
      expect((await successor.auth.whoAmI({})).principal?.keyId).toBe(rotated.apiKey!.id);
      // The sweep records the end of the grace as a revocation ("rotated").
      await vi.waitFor(
        async () => {
          const ended = (await h.events("ApiKeyRevoked")).find((e) => (e.payload as { keyId: string }).keyId === old.apiKey!.id);
          expect(ended?.payload).toMatchObject({ reason: "rotated" });
        },
        { timeout: 20_000, interval: 200 },
      );
      expect((await owner.auth.getApiKey({ keyId: old.apiKey!.id })).apiKey?.status).toBe(ApiKeyStatus.REVOKED);
      expect((await h.events("ApiKeyRotated")).some((e) => (e.payload as { keyId: string }).keyId === old.apiKey!.id)).toBe(true);
      expect(await failure(() => owner.auth.rotateApiKey({ keyId: old.apiKey!.id }))).toMatchObject({ code: "FailedPrecondition" });
    });

    it("inactivity: a key unused for N days is AUTH_INACTIVE_KEY until reactivated; use keeps it alive", async () => {
      const { ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      const idle = await owner.auth.createApiKey({ name: "idle", role: Role.VIEWER });
      const busy = await owner.auth.createApiKey({ name: "busy", role: Role.VIEWER });
      for (let day = 0; day < 3; day++) {
        h.clock.advance(12 * DAY);
        await h.client(ownerKey).auth.whoAmI({});
        await h.client(busy.plaintextKey).auth.whoAmI({});
        await h.client(h.platformKey).auth.whoAmI({});
      }
      expect(await failure(() => h.client(idle.plaintextKey).auth.whoAmI({}))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_INACTIVE_KEY",
      });
      expect((await owner.auth.getApiKey({ keyId: idle.apiKey!.id })).apiKey?.status).toBe(ApiKeyStatus.INACTIVE);
      expect((await owner.auth.listApiKeys({ statuses: [ApiKeyStatus.INACTIVE] })).apiKeys.map((k) => k.id)).toEqual([idle.apiKey!.id]);
      expect((await h.client(busy.plaintextKey).auth.whoAmI({})).principal?.keyId).toBe(busy.apiKey!.id);
      await owner.auth.reactivateApiKey({ keyId: idle.apiKey!.id });
      expect((await h.client(idle.plaintextKey).auth.whoAmI({})).principal?.keyId).toBe(idle.apiKey!.id);
      expect((await h.events("ApiKeyReactivated")).some((e) => (e.payload as { keyId: string }).keyId === idle.apiKey!.id)).toBe(true);
    });

    it("expired keys are AUTH_EXPIRED_KEY", async () => {
      const { ownerKey } = await h.tenant();
      const k = await h
        .client(ownerKey)
        .auth.createApiKey({ name: "short", role: Role.VIEWER, expiresAt: timestampFromDate(new Date(h.clock.now().getTime() + 60_000)) });
      expect((await h.client(k.plaintextKey).auth.whoAmI({})).apiKey?.expiresAt).toBeDefined();
      h.clock.advance(61_000);
      expect(await failure(() => h.client(k.plaintextKey).auth.whoAmI({}))).toMatchObject({
        code: "Unauthenticated",
        reason: "AUTH_EXPIRED_KEY",
      });
    });

    it("caps active keys per tenant: FAILED_PRECONDITION KEY_LIMIT_REACHED; the cap can be overridden per tenant", async () => {
      const { tenant, ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      const made = [];
      for (let i = 0; i < 7; i++) made.push(await owner.auth.createApiKey({ name: `k${i}`, role: Role.VIEWER }));
      expect(await failure(() => owner.auth.createApiKey({ name: "one-too-many", role: Role.VIEWER }))).toMatchObject({
        code: "FailedPrecondition",
        reason: "KEY_LIMIT_REACHED",
        metadata: { limit: "8" },
      });
      await owner.auth.revokeApiKey({ keyId: made[0]!.apiKey!.id });
      await owner.auth.createApiKey({ name: "after-revoke", role: Role.VIEWER });
      await h.client(h.platformKey).auth.setEntitlementOverrides({ tenantId: tenant.id, overrides: { features: [], maxActiveApiKeys: 9 } });
      await owner.auth.createApiKey({ name: "with-override", role: Role.VIEWER });
      expect(await failure(() => owner.auth.createApiKey({ name: "over-override", role: Role.VIEWER }))).toMatchObject({
        reason: "KEY_LIMIT_REACHED",
        metadata: { limit: "9" },
      });
    });

    it("admins grant at most admin and cannot touch owner keys; roles change everywhere at once", async () => {
      const { ownerKey, ownerKeyId } = await h.tenant();
      const owner = h.client(ownerKey);
      const admin = await owner.auth.createApiKey({ name: "admin", role: Role.ADMIN });
      const asAdmin = h.client(admin.plaintextKey);
      expect(await failure(() => asAdmin.auth.createApiKey({ name: "x", role: Role.OWNER }))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
      expect(await failure(() => asAdmin.auth.revokeApiKey({ keyId: ownerKeyId }))).toMatchObject({
        code: "PermissionDenied",
        reason: "RBAC_FORBIDDEN",
      });
      expect(await failure(() => asAdmin.auth.setApiKeyRole({ keyId: admin.apiKey!.id, role: Role.OWNER }))).toMatchObject({
        reason: "RBAC_FORBIDDEN",
      });
      // Each of these refusals, decided inside the auth service, is one rbac.forbidden event.
      const refusals = (await h.events("RbacForbidden")).filter((e) => (e.payload as { keyId: string }).keyId === admin.apiKey!.id);
      expect(refusals.map((e) => (e.payload as { procedure: string }).procedure)).toEqual([
        "/nexus.auth.v1.AuthService/CreateApiKey",
        "/nexus.auth.v1.AuthService/RevokeApiKey",
        "/nexus.auth.v1.AuthService/SetApiKeyRole",
      ]);
      expect(refusals[0]?.payload).toMatchObject({ reason: "RBAC_FORBIDDEN", requiredRole: "ROLE_OWNER" });
      const editor = await asAdmin.auth.createApiKey({ name: "ed", role: Role.EDITOR });
      expect((await h.client(editor.plaintextKey).auth.whoAmI({})).principal?.role).toBe(Role.EDITOR);
      expect(await outcome(() => h.client(editor.plaintextKey).auth.listApiKeys({}))).toBe("PermissionDenied RBAC_FORBIDDEN");
      await asAdmin.auth.setApiKeyRole({ keyId: editor.apiKey!.id, role: Role.ADMIN });
      expect((await h.client(editor.plaintextKey).auth.whoAmI({})).principal?.role).toBe(Role.ADMIN);
      expect(await outcome(() => h.client(editor.plaintextKey).auth.listApiKeys({}))).toBe("ok");
      expect((await h.events("ApiKeyRoleChanged")).some((e) => (e.payload as { keyId: string }).keyId === editor.apiKey!.id)).toBe(true);
    });
  });

  describe("suspension", () => {
    it("a suspended tenant's keys stop at once (PERMISSION_DENIED TENANT_SUSPENDED) and work again after resume", async () => {
      const ops = h.client(h.platformKey);
      const { tenant, ownerKey } = await h.tenant();
      const owner = h.client(ownerKey);
      await owner.auth.whoAmI({});
      const suspended = await ops.auth.suspendTenant({ tenantId: tenant.id, reason: "unpaid invoice" });
      expect(suspended.tenant).toMatchObject({ status: TenantStatus.SUSPENDED, suspensionReason: "unpaid invoice" });
      expect(await failure(() => owner.auth.whoAmI({}))).toMatchObject({ code: "PermissionDenied", reason: "TENANT_SUSPENDED" });
      expect(await failure(() => owner.retrieval.listCorpora({}))).toMatchObject({ reason: "TENANT_SUSPENDED" });
      await ops.auth.suspendTenant({ tenantId: tenant.id, reason: "twice" });
      await ops.auth.resumeTenant({ tenantId: tenant.id });
      expect((await owner.auth.whoAmI({})).principal?.tenantId).toBe(tenant.id);
      const types = (await h.events()).filter((e) => e.streamId === `tenant-${tenant.id}`).map((e) => e.type.split(".").pop());
      expect(types).toEqual(["TenantCreated", "TenantSuspended", "TenantResumed"]);
    });
  });

  describe("the role matrix (each role × each permission class, through real RPCs)", () => {
    it("admits exactly what the table says", async () => {
      const { tenant } = await h.tenant();
      const keys: Record<string, string> = { platform: h.platformKey };
      for (const [name, role] of [
        ["owner", Role.OWNER],
        ["admin", Role.ADMIN],
        ["editor", Role.EDITOR],
        ["viewer", Role.VIEWER],
      ] as const) {
        keys[name] = (await h.key(tenant.id, role, name)).plaintext;
      }
      // One RPC per class. "owner" is the owner-only tier inside auth: granting an owner key.
      const classes: Record<string, (k: string) => Promise<unknown>> = {
        read: (k) => h.client(k).retrieval.listCorpora({}),
        write: (k) => h.client(k).ingestion.deleteDocument({ documentId: "no-such-document" }),
        admin: (k) => h.client(k).auth.listApiKeys({ tenantId: tenant.id }),
        owner: (k) => h.client(k).auth.createApiKey({ tenantId: tenant.id, name: "granted-owner", role: Role.OWNER }),
        platform: (k) => h.client(k).auth.listTenants({}),
        authenticated: (k) => h.client(k).auth.whoAmI({}),
      };
      const expected: Record<string, Record<string, boolean>> = {
        viewer: { read: true, write: false, admin: false, owner: false, platform: false, authenticated: true },
        editor: { read: true, write: true, admin: false, owner: false, platform: false, authenticated: true },
        admin: { read: true, write: true, admin: true, owner: false, platform: false, authenticated: true },
        owner: { read: true, write: true, admin: true, owner: true, platform: false, authenticated: true },
        platform: { read: false, write: false, admin: true, owner: true, platform: true, authenticated: true },
      };
      const actual: Record<string, Record<string, boolean>> = {};
      for (const principal of Object.keys(expected)) {
        actual[principal] = {};
        for (const [cls, call] of Object.entries(classes)) {
          const result = await outcome(() => call(keys[principal]!));
          actual[principal]![cls] = passedAuthorization(result);
          if (!actual[principal]![cls]) expect(result, `${principal} × ${cls}`).toBe("PermissionDenied RBAC_FORBIDDEN");
        }
      }
      expect(actual).toEqual(expected);
    });
  });

  describe("audit events for refusals", () => {
    it("records exactly one auth.access.failure per refused call, and never for accepted ones", async () => {
      const before = (await h.events("AccessDenied")).length;
      const anonymous = h.client();
      await outcome(() => anonymous.retrieval.listCorpora({}));
      await outcome(() => h.client("nxs_000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").auth.whoAmI({}));
      await outcome(() => h.client("not-a-nexus-key").ingestion.listDocuments({}));
      await outcome(() => h.client(h.platformKey).auth.whoAmI({}));
      const recorded = (await h.events("AccessDenied")).slice(before);
      expect(recorded.map((e) => e.payload)).toEqual([
        expect.objectContaining({ reason: "AUTH_UNAUTHORIZED", procedure: "/nexus.retrieval.v1.RetrievalService/ListCorpora" }),
        expect.objectContaining({ reason: "AUTH_UNAUTHORIZED", procedure: "/nexus.auth.v1.AuthService/WhoAmI" }),
        expect.objectContaining({ reason: "AUTH_UNAUTHORIZED", procedure: "/nexus.ingestion.v1.IngestionService/ListDocuments" }),
      ]);
      expect(recorded.every((e) => e.topic === "auth.access_denied")).toBe(true);
    });

    it("records the key id and tenant of a known key refused for its state", async () => {
      const { tenant, ownerKey } = await h.tenant();
      const k = await h.client(ownerKey).auth.createApiKey({ name: "doomed", role: Role.VIEWER });
      await h.client(ownerKey).auth.revokeApiKey({ keyId: k.apiKey!.id });
      const before = (await h.events("AccessDenied")).length;
      await outcome(() => h.client(k.plaintextKey).retrieval.search({}));
      const recorded = (await h.events("AccessDenied")).slice(before);
      expect(recorded).toHaveLength(1);
      expect(recorded[0]).toMatchObject({
        payload: {
          reason: "AUTH_REVOKED_KEY",
          keyId: k.apiKey!.id,
          tenantId: tenant.id,
          procedure: "/nexus.retrieval.v1.RetrievalService/Search",
        },
        metadata: { tenantId: tenant.id },
      });
    });

    it("records an attempt with a real key id and a wrong secret against that key, in its tenant's stream", async () => {
      const { tenant, ownerKey } = await h.tenant();
      const k = await h.client(ownerKey).auth.createApiKey({ name: "target", role: Role.VIEWER });
      const keyId = k.apiKey!.id;
      const guessed = `nxs_${keyId}_${"A".repeat(43)}`;
      const before = (await h.events("AccessDenied")).length;
      expect(await outcome(() => h.client(guessed).retrieval.listCorpora({}))).toBe("Unauthenticated AUTH_UNAUTHORIZED");
      const recorded = (await h.events("AccessDenied")).slice(before);
      expect(recorded).toHaveLength(1);
      expect(recorded[0]).toMatchObject({
        payload: { reason: "AUTH_UNAUTHORIZED", keyId, tenantId: tenant.id, procedure: "/nexus.retrieval.v1.RetrievalService/ListCorpora" },
        metadata: { tenantId: tenant.id },
      });
      // A key id that names no key is still recorded with the id it claimed, installation-wide.
      await outcome(() => h.client("nxs_000000000000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").auth.whoAmI({}));
      const unknown = (await h.events("AccessDenied")).at(-1);
      expect(unknown).toMatchObject({ payload: { keyId: "000000000000000000000000" } });
      expect((unknown?.payload as { tenantId?: string } | undefined)?.tenantId ?? "").toBe("");
      expect(unknown?.metadata.tenantId).toBeUndefined();
    });

    it("records exactly one rbac.forbidden per call the permission table refuses", async () => {
      const { tenant } = await h.tenant();
      const viewer = await h.key(tenant.id, Role.VIEWER, "viewer");
      const before = (await h.events("RbacForbidden")).length;
      await outcome(() => h.client(viewer.plaintext).auth.setPlan({ tenantId: tenant.id, plan: Plan.ENTERPRISE }));
      await outcome(() => h.client(viewer.plaintext).metering.getUsageSummary({ tenantId: "someone-else" }));
      const recorded = (await h.events("RbacForbidden")).slice(before);
      expect(recorded.map((e) => e.payload)).toEqual([
        expect.objectContaining({
          keyId: viewer.id,
          reason: "RBAC_FORBIDDEN",
          procedure: "/nexus.auth.v1.AuthService/SetPlan",
          role: "ROLE_VIEWER",
        }),
        expect.objectContaining({
          keyId: viewer.id,
          reason: "RBAC_FORBIDDEN",
          procedure: "/nexus.metering.v1.MeteringService/GetUsageSummary",
          requiredRole: "ROLE_ADMIN",
        }),
      ]);
    });
  });

  describe("WhoAmI", () => {
    it("returns the principal and its key for platform and tenant keys", async () => {
      const ops = await h.client(h.platformKey).auth.whoAmI({});
      expect(ops.principal).toMatchObject({ kind: PrincipalKind.PLATFORM, tenantId: "", role: Role.UNSPECIFIED });
      const { tenant, ownerKey, ownerKeyId } = await h.tenant(Plan.ENTERPRISE);
      const me = await h.client(ownerKey).auth.whoAmI({});
      expect(me.principal).toMatchObject({
        kind: PrincipalKind.TENANT,
        keyId: ownerKeyId,
        tenantId: tenant.id,
        tenantSlug: tenant.slug,
        role: Role.OWNER,
        plan: Plan.ENTERPRISE,
      });
      expect(me.apiKey?.id).toBe(ownerKeyId);
    });
  });
});
