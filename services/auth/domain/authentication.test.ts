import { describe, expect, it } from "vitest";
import type { ApiKey } from "./api-key.js";
import { generateApiKey } from "./api-key-secret.js";
import { authenticateKey } from "./authentication.js";
import type { Tenant } from "./tenant.js";

const T0 = new Date("2026-01-01T00:00:00Z");
const at = (ms: number) => new Date(T0.getTime() + ms);
const DAY = 86_400_000;
const material = generateApiKey();
const key: ApiKey = {
  id: material.keyId,
  kind: "tenant",
  tenantId: "t1",
  name: "ci",
  role: "viewer",
  digest: material.digest,
  createdAt: T0,
  expiresAt: undefined,
  lastUsedAt: undefined,
  reactivatedAt: undefined,
  revokedAt: undefined,
  revocationReason: "",
  successorKeyId: "",
  predecessorKeyId: "",
  graceEndsAt: undefined,
  createdByKeyId: "",
  ownerUserId: "",
};
const tenant: Tenant = {
  id: "t1",
  slug: "acme",
  displayName: "Acme",
  plan: "free",
  status: "active",
  overrides: { features: [] },
  suspensionReason: "",
  createdAt: T0,
  updatedAt: T0,
  suspendedAt: undefined,
};
const run = (k: ApiKey, t: Tenant = tenant, now = at(1), presented = material.plaintext) =>
  authenticateKey({ presented, key: k, tenant: t, now, inactivityMs: 30 * DAY, touchIntervalMs: 60_000 });

describe("authenticateKey", () => {
  it("resolves a valid key to a tenant principal with its entitlements", () => {
    const r = run(key);
    expect(r).toMatchObject({
      kind: "authenticated",
      touch: true,
      principal: { kind: "tenant", keyId: key.id, tenantId: "t1", tenantSlug: "acme", role: "viewer", plan: "free" },
    });
    if (r.kind === "authenticated") {
      expect(r.principal.kind === "tenant" && r.principal.entitlements.features["feature.tts"]).toBe(false);
      expect(r.validUntil).toEqual(at(1 + 30 * DAY));
    }
  });

  it("refuses a wrong secret or unknown key as AUTH_UNAUTHORIZED without revealing its state, naming the claimed key", () => {
    const other = generateApiKey().plaintext;
    const otherId = other.split("_")[1]!;
    // Another key's material presented where this key was looked up: the claimed id is the other one.
    expect(run({ ...key, revokedAt: T0 }, tenant, at(1), other)).toEqual({ kind: "refused", reason: "AUTH_UNAUTHORIZED", keyId: otherId });
    expect(
      authenticateKey({ presented: material.plaintext, key: undefined, tenant: undefined, now: T0, inactivityMs: 0, touchIntervalMs: 0 }),
    ).toEqual({
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
      keyId: key.id,
    });
    // The real key id with a wrong secret: an attempt against that key, in its tenant's chain.
    const wrongSecret = `nxs_${key.id}_${"A".repeat(43)}`;
    expect(run({ ...key, revokedAt: T0 }, tenant, at(1), wrongSecret)).toEqual({
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
      keyId: key.id,
      tenantId: "t1",
    });
    expect(
      authenticateKey({ presented: "not-a-key", key: undefined, tenant: undefined, now: T0, inactivityMs: 0, touchIntervalMs: 0 }),
    ).toEqual({
      kind: "refused",
      reason: "AUTH_UNAUTHORIZED",
    });
  });

  it("refuses revoked, ended grace, expired, inactive and suspended in that order", () => {
    expect(run({ ...key, revokedAt: T0, expiresAt: T0 })).toMatchObject({ reason: "AUTH_REVOKED_KEY", keyId: key.id, tenantId: "t1" });
    expect(run({ ...key, graceEndsAt: at(1) })).toMatchObject({ reason: "AUTH_REVOKED_KEY" });
    expect(run({ ...key, expiresAt: at(1) })).toMatchObject({ reason: "AUTH_EXPIRED_KEY" });
    expect(run(key, tenant, at(31 * DAY))).toMatchObject({ reason: "AUTH_INACTIVE_KEY" });
    expect(run(key, { ...tenant, status: "suspended" })).toMatchObject({ reason: "TENANT_SUSPENDED" });
  });

  it("bounds the answer by expiry and rotation grace, and touches at most once a minute", () => {
    const r = run({ ...key, expiresAt: at(DAY), graceEndsAt: at(DAY / 2), lastUsedAt: at(0) }, tenant, at(30_000));
    expect(r).toMatchObject({ kind: "authenticated", touch: false, validUntil: at(DAY / 2) });
  });
});
