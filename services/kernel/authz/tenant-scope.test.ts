import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { type Principal, principalKey } from "../context.js";
import { errorMetadata, errorReason } from "../errors.js";
import { platformPrincipal, principalOf, tenantPrincipal } from "./tenant-scope.js";

const tenant: Principal = {
  kind: "tenant",
  keyId: "k",
  name: "k",
  tenantId: "t1",
  tenantSlug: "acme",
  role: "viewer",
  plan: "free",
  entitlements: { features: {}, featureConfig: {}, monthlyRunAllowance: 100, maxActiveApiKeys: undefined },
};
const platform: Principal = { kind: "platform", keyId: "p", name: "ops" };

function ctxOf(principal: Principal | undefined) {
  const values = createContextValues();
  if (principal) values.set(principalKey, principal);
  return { values };
}

function refusal(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("principal guards", () => {
  it("tenantPrincipal admits tenant keys and refuses platform keys with PERMISSION_DENIED RBAC_FORBIDDEN", () => {
    expect(tenantPrincipal(ctxOf(tenant))).toBe(tenant);
    const err = refusal(() => tenantPrincipal(ctxOf(platform), "platform keys cannot read sessions"));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("RBAC_FORBIDDEN");
    expect(errorMetadata(err)).toEqual({ principal_kind: "platform" });
    expect(err.rawMessage).toBe("platform keys cannot read sessions");
  });

  it("platformPrincipal admits platform keys and refuses tenant keys with PERMISSION_DENIED RBAC_FORBIDDEN", () => {
    expect(platformPrincipal(ctxOf(platform))).toBe(platform);
    const err = refusal(() => platformPrincipal(ctxOf(tenant)));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("RBAC_FORBIDDEN");
    expect(errorMetadata(err)).toEqual({ principal_kind: "tenant" });
  });

  it("every guard fails closed with UNAUTHENTICATED when no principal was set (the gate is missing)", () => {
    for (const guard of [principalOf, tenantPrincipal, platformPrincipal]) {
      const err = refusal(() => guard(ctxOf(undefined)));
      expect(err.code).toBe(Code.Unauthenticated);
      expect(errorReason(err)).toBe("AUTH_UNAUTHORIZED");
    }
  });
});
