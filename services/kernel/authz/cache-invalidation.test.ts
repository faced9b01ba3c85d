import { describe, expect, it } from "vitest";
import { invalidationOf, sessionKey, userIdKey } from "./cache-invalidation.js";

const event = (short: string, payload: Record<string, unknown>) => ({ type: `nexus.events.v1.${short}`, payload });

describe("what an auth event ends in the authentication caches", () => {
  it.each([
    ["ApiKeyRevoked", { keyId: "k1", tenantId: "t1" }, { keyIds: ["k1"] }],
    ["TenantSuspended", { tenantId: "t1" }, { tenantIds: ["t1"] }],
    // A person's tokens (user:<id>) and sessions (through their tenant) end with the membership.
    ["MembershipRevoked", { tenantId: "t1", userId: "u1" }, { keyIds: [userIdKey("u1")], tenantIds: ["t1"] }],
    ["MembershipRoleChanged", { tenantId: "t1", userId: "u1" }, { keyIds: [userIdKey("u1")], tenantIds: ["t1"] }],
    ["PlatformOperatorChanged", { userId: "u1" }, { keyIds: [userIdKey("u1")] }],
    ["SessionEnded", { tenantId: "t1", sessionId: "s1", userId: "u1" }, { keyIds: [sessionKey("s1")] }],
    ["IdentityProviderConfigured", { tenantId: "t1" }, { tenantIds: ["t1"] }],
    // Unreadable payloads end everything rather than nothing.
    ["MembershipRevoked", {}, { all: true }],
    ["SessionEnded", {}, { all: true }],
  ])("%s %j → %j", (type, payload, target) => {
    expect(invalidationOf(event(type, payload))).toEqual(target);
  });

  it.each(["UserCreated", "MembershipGranted", "SessionStarted", "ApiKeyIssued"])(
    "%s ends nothing (no cached answer becomes wrong)",
    (type) => {
      expect(invalidationOf(event(type, { tenantId: "t1", userId: "u1" }))).toBeUndefined();
    },
  );
});
