import { describe, expect, it } from "vitest";
import { AUDITED_EVENT_TYPES, taxonomyEntry } from "./audit-taxonomy.js";

const at = new Date("2025-03-10T12:00:00Z");

describe("audit taxonomy", () => {
  it("maps the seed's event types", () => {
    const types = AUDITED_EVENT_TYPES.map(
      (type) => taxonomyEntry({ eventId: "e", type, payload: {}, metadata: { tenantId: "t1", actor: "k1" }, occurredAt: at })?.eventType,
    );
    for (const t of [
      "auth.api_key.created",
      "auth.api_key.rotated",
      "auth.api_key.revoked",
      "auth.access.failure",
      "rbac.forbidden",
      "documents.ingest.enqueued",
      "documents.deleted",
      "corpora.updated",
      "run.invoked",
      "quota.soft_cap_reached",
      "quota.hard_cap_blocked",
      "quota.overage_observed",
    ]) {
      expect(types).toContain(t);
    }
  });

  it("audits integration management changes without secrets", () => {
    const e = taxonomyEntry({
      eventId: "e2",
      type: "nexus.events.v1.SenderAppChanged",
      payload: { tenantId: "t1", appId: "a1", change: "key_rotated", name: "sensors", keyVersion: 2 },
      metadata: { tenantId: "t1", actor: "k1" },
      occurredAt: at,
    });
    expect(e).toMatchObject({
      eventType: "integration.sender_app.key_rotated",
      action: "nexus.integration.v1.IntegrationService/RotateAppKey",
      resource: { type: "sender_app", id: "a1" },
      after: { name: "sensors", key_version: 2 },
    });
    const w = taxonomyEntry({
      eventId: "e3",
      type: "nexus.events.v1.WorkflowChanged",
      payload: { tenantId: "t1", workflowId: "w1", change: "rolled_back", name: "flow", version: 3 },
      metadata: { tenantId: "t1", actor: "k1" },
      occurredAt: at,
    });
    expect(w).toMatchObject({
      eventType: "integration.workflow.rolled_back",
      action: "nexus.integration.v1.IntegrationService/RollbackWorkflow",
    });
  });

  it("treats access failures as anonymous and refusals as failures", () => {
    const e = taxonomyEntry({
      eventId: "e1",
      type: "nexus.events.v1.AccessDenied",
      payload: { keyId: "k9", reason: "AUTH_REVOKED_KEY", procedure: "/nexus.retrieval.v1.RetrievalService/Search" },
      metadata: { tenantId: "t1", actor: "k9", requestId: "r1" },
      occurredAt: at,
    });
    expect(e).toMatchObject({
      tenantId: "t1",
      eventType: "auth.access.failure",
      actor: { keyId: "k9", kind: "anonymous" },
      action: "nexus.retrieval.v1.RetrievalService/Search",
      outcome: "failure",
      requestId: "r1",
      metadata: { reason: "AUTH_REVOKED_KEY" },
    });
  });

  it("uses the run's own request id for run.invoked and the payload's tenant when metadata has none", () => {
    const e = taxonomyEntry({
      eventId: "e2",
      type: "nexus.events.v1.RunStarted",
      payload: { tenantId: "t2", requestId: "run-7", sessionId: "s1", plan: "PLAN_PRO" },
      metadata: { actor: "system", requestId: "other" },
      occurredAt: at,
    });
    expect(e).toMatchObject({ tenantId: "t2", requestId: "run-7", actor: { kind: "system" }, metadata: { plan: "pro" } });
  });

  it("audits each step of a module version's approval and a rollback", () => {
    const entry = (type: string, payload: Record<string, unknown>) =>
      taxonomyEntry({ eventId: "e", type: `nexus.events.v1.${type}`, payload, metadata: { tenantId: "t3", actor: "k3" }, occurredAt: at });
    expect(entry("ModuleVersionSubmitted", { name: "stats", version: "1.0.0", status: "TESTS_FAILED", testsFailed: 2 })).toMatchObject({
      eventType: "modules.version.submitted",
      outcome: "failure",
      resource: { type: "module", id: "stats@1.0.0" },
      metadata: { tests_failed: 2 },
    });
    expect(entry("ModuleVersionReviewed", { name: "stats", version: "1.0.0", approved: true })?.eventType).toBe("modules.version.approved");
    expect(entry("ModuleVersionReviewed", { name: "stats", version: "1.0.0", feedback: "no" })?.eventType).toBe("modules.version.rejected");
    expect(entry("ModuleVersionActivated", { name: "stats", version: "1.0.0", previousVersion: "2.0.0" })).toMatchObject({
      eventType: "modules.version.activated",
      actor: { keyId: "k3" },
      before: { version: "2.0.0" },
      after: { version: "1.0.0" },
    });
    expect(entry("ModuleCredentialSet", { name: "API_KEY" })).toMatchObject({
      eventType: "modules.credential.set",
      resource: { id: "API_KEY" },
    });
  });

  it("audits people and sign-ins (identity) with the member's role and never a secret", () => {
    const added = taxonomyEntry({
      eventId: "e3",
      type: "nexus.events.v1.MembershipRoleChanged",
      payload: { tenantId: "t1", userId: "u1", previousRole: "ROLE_VIEWER", role: "ROLE_ADMIN" },
      metadata: { tenantId: "t1", actor: "k1" },
      occurredAt: at,
    });
    expect(added).toMatchObject({
      eventType: "identity.member.role_changed",
      resource: { type: "user", id: "u1" },
      before: { role: "viewer" },
      after: { role: "admin" },
    });
    const provider = taxonomyEntry({
      eventId: "e4",
      type: "nexus.events.v1.IdentityProviderConfigured",
      payload: { tenantId: "t1", issuer: "https://idp.example.com", clientId: "c", enabled: true, clientSecretSet: true },
      metadata: { tenantId: "t1", actor: "k1" },
      occurredAt: at,
    });
    expect(provider?.after).toEqual({ issuer: "https://idp.example.com", client_id: "c", enabled: true, client_secret_set: true });
    expect(
      taxonomyEntry({
        eventId: "e5",
        type: "nexus.events.v1.SessionEnded",
        payload: { sessionId: "s1" },
        metadata: { tenantId: "t1", actor: "user:u1" },
        occurredAt: at,
      })?.eventType,
    ).toBe("auth.sso.sign_out");
  });

  it("ignores events outside the taxonomy", () => {
    expect(taxonomyEntry({ eventId: "e", type: "nexus.events.v1.Unknown", payload: {}, metadata: {}, occurredAt: at })).toBeUndefined();
  });
});
