import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { GetTenantRequestSchema, ListApiKeysRequestSchema } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import type { Principal, TenantRole } from "../context.js";
import { NEXUS_SERVICES } from "./all-services.js";
import { authorize } from "./authorize.js";
import { PERMISSIONS, type Permission, permissionOf, procedureOf } from "./permissions.js";
import { hasTenantIdField, requestTenantId } from "./request-tenant.js";

const procedures = NEXUS_SERVICES.flatMap((s) => s.methods.map((m) => procedureOf(s.typeName, m.name)));

const tenant = (role: TenantRole, features: Record<string, boolean> = {}): Principal => ({
  kind: "tenant",
  keyId: `k-${role}`,
  name: role,
  tenantId: "t1",
  tenantSlug: "acme",
  role,
  plan: "pro",
  entitlements: { features, featureConfig: {}, monthlyRunAllowance: 100, maxActiveApiKeys: undefined },
});
const platform: Principal = { kind: "platform", keyId: "kp", name: "ops" };

describe("the permission table", () => {
  it("lists every RPC of every service, and nothing else", () => {
    expect(Object.keys(PERMISSIONS).sort()).toEqual([...procedures].sort());
  });

  it("denies an RPC it does not list, to everyone", () => {
    expect(permissionOf("/nexus.auth.v1.AuthService/DropEverything")).toBeUndefined();
    for (const p of [platform, tenant("owner")]) {
      expect(authorize({ permission: undefined, principal: p, requestTenantId: undefined })).toMatchObject({
        kind: "denied",
        reason: "RBAC_FORBIDDEN",
      });
    }
  });

  it("keeps plans, quotas, overrides, tenants and dead letters platform-only", () => {
    for (const rpc of [
      "/nexus.auth.v1.AuthService/CreateTenant",
      "/nexus.auth.v1.AuthService/ListTenants",
      "/nexus.auth.v1.AuthService/SuspendTenant",
      "/nexus.auth.v1.AuthService/ResumeTenant",
      "/nexus.auth.v1.AuthService/SetPlan",
      "/nexus.auth.v1.AuthService/SetEntitlementOverrides",
      "/nexus.metering.v1.MeteringService/SetQuota",
      "/nexus.ingestion.v1.IngestionService/ListDeadLetters",
      "/nexus.ingestion.v1.IngestionService/ReplayDeadLetter",
    ]) {
      expect(PERMISSIONS[rpc]?.class, rpc).toBe("platform");
    }
    expect(
      Object.entries(PERMISSIONS)
        .filter(([, p]) => p.class === "public")
        .map(([k]) => k),
    ).toEqual([
      "/nexus.auth.v1.AuthService/Authenticate",
      // An edge agent's own calls: the integration service checks the edge token (docs/edge.md).
      "/nexus.integration.v1.EdgeService/GetEdgeConfig",
      "/nexus.integration.v1.EdgeService/ForwardMessages",
    ]);
  });

  it("decides each role × each permission class", () => {
    const classes: Record<string, Permission> = {
      read: { class: "read" },
      write: { class: "write" },
      admin: { class: "admin" },
      platform: { class: "platform" },
      authenticated: { class: "authenticated" },
    };
    const expected: Record<string, Record<string, boolean>> = {
      viewer: { read: true, write: false, admin: false, platform: false, authenticated: true },
      editor: { read: true, write: true, admin: false, platform: false, authenticated: true },
      admin: { read: true, write: true, admin: true, platform: false, authenticated: true },
      owner: { read: true, write: true, admin: true, platform: false, authenticated: true },
    };
    for (const [role, row] of Object.entries(expected)) {
      for (const [name, permission] of Object.entries(classes)) {
        const d = authorize({ permission, principal: tenant(role as TenantRole), requestTenantId: undefined });
        expect(d.kind === "allowed", `${role} × ${name}`).toBe(row[name]);
        if (d.kind === "denied") expect(d.reason).toBe("RBAC_FORBIDDEN");
      }
    }
    // Platform operators: installation-wide work and tenant-scoped administration, never tenant content.
    expect(authorize({ permission: classes.platform, principal: platform, requestTenantId: undefined }).kind).toBe("allowed");
    expect(authorize({ permission: classes.read, principal: platform, requestTenantId: undefined }).kind).toBe("denied");
    expect(authorize({ permission: { class: "admin", platform: true }, principal: platform, requestTenantId: "t9" }).kind).toBe("allowed");
  });

  it("refuses a tenant principal naming another tenant, and a missing feature", () => {
    expect(authorize({ permission: { class: "read" }, principal: tenant("owner"), requestTenantId: "t2" })).toMatchObject({
      kind: "denied",
      reason: "TENANT_MISMATCH",
    });
    expect(authorize({ permission: { class: "read" }, principal: tenant("owner"), requestTenantId: "t1" }).kind).toBe("allowed");
    expect(authorize({ permission: { class: "read" }, principal: tenant("owner"), requestTenantId: "" }).kind).toBe("allowed");
    const audit = PERMISSIONS["/nexus.audit.v1.AuditService/ListAuditEvents"];
    expect(authorize({ permission: audit, principal: tenant("admin"), requestTenantId: "" })).toMatchObject({
      kind: "denied",
      reason: "FEATURE_NOT_ENABLED",
      featureKey: "feature.audit_access",
    });
    expect(authorize({ permission: audit, principal: tenant("admin", { "feature.audit_access": true }), requestTenantId: "" }).kind).toBe(
      "allowed",
    );
  });

  it("reads tenant_id from requests generically, oneofs included", () => {
    expect(hasTenantIdField(ListApiKeysRequestSchema)).toBe(true);
    expect(requestTenantId(ListApiKeysRequestSchema, create(ListApiKeysRequestSchema, { tenantId: "t2" }))).toBe("t2");
    expect(requestTenantId(GetTenantRequestSchema, create(GetTenantRequestSchema, { selector: { case: "tenantId", value: "t3" } }))).toBe(
      "t3",
    );
    expect(requestTenantId(GetTenantRequestSchema, create(GetTenantRequestSchema, { selector: { case: "slug", value: "x" } }))).toBe("");
  });
});
