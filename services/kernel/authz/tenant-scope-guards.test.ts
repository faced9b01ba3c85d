import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { Principal } from "../context.js";
import { errorMetadata, errorReason } from "../errors.js";
import { takeUnrecordedRefusal } from "./refusal.js";
import { requirePlatformPrincipal, requireTenantPrincipal } from "./tenant-scope.js";

const tenant: Principal = {
  kind: "tenant",
  keyId: "k",
  name: "k",
  tenantId: "t1",
  tenantSlug: "acme",
  role: "owner",
  plan: "pro",
  entitlements: { features: {}, featureConfig: {}, monthlyRunAllowance: 100, maxActiveApiKeys: undefined },
};
const platform: Principal = { kind: "platform", keyId: "p", name: "ops" };

function refusal(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }
  throw new Error("expected a refusal");
}

describe("principal guards", () => {
  it("requireTenantPrincipal lets a tenant key through and refuses a platform key with RBAC_FORBIDDEN, recorded once", () => {
    expect(requireTenantPrincipal(tenant, "run agents").tenantId).toBe("t1");
    const err = refusal(() =>
      requireTenantPrincipal(platform, "platform keys cannot run agents or read sessions; use a key of the tenant"),
    );
    expect(err.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("RBAC_FORBIDDEN");
    expect(err.rawMessage).toBe("platform keys cannot run agents or read sessions; use a key of the tenant");
    expect(errorMetadata(err)).toMatchObject({ principal_kind: "platform" });
    // The authorization interceptor records it as rbac.forbidden, exactly once.
    expect(takeUnrecordedRefusal(err)).toBe(true);
    expect(takeUnrecordedRefusal(err)).toBe(false);
  });

  it("requirePlatformPrincipal lets a platform key through and refuses a tenant key, even an owner's", () => {
    expect(requirePlatformPrincipal(platform, "change quotas").keyId).toBe("p");
    const err = refusal(() => requirePlatformPrincipal(tenant, "only platform operators can change quotas"));
    expect(err.code).toBe(Code.PermissionDenied);
    expect(errorReason(err)).toBe("RBAC_FORBIDDEN");
    expect(err.rawMessage).toBe("only platform operators can change quotas");
    expect(errorMetadata(err)).toMatchObject({ principal_kind: "tenant" });
    expect(takeUnrecordedRefusal(err)).toBe(true);
  });
});
