import { describe, expect, it } from "vitest";
import type { Principal } from "../context.js";
import { errorMetadata, errorReason } from "../errors.js";
import { takeUnrecordedRefusal } from "./refusal.js";
import { hasFeature, requireFeature } from "./require-feature.js";
import { tenantScope } from "./tenant-scope.js";

const tenant: Principal = {
  kind: "tenant",
  keyId: "k",
  name: "k",
  tenantId: "t1",
  tenantSlug: "acme",
  role: "admin",
  plan: "free",
  entitlements: {
    features: { "feature.retrieval.local_pgvector": true, "feature.tts": false },
    featureConfig: {},
    monthlyRunAllowance: 100,
    maxActiveApiKeys: undefined,
  },
};
const platform: Principal = { kind: "platform", keyId: "p", name: "ops" };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}

describe("requireFeature", () => {
  it("passes enabled features and platform principals; refuses others with FEATURE_NOT_ENABLED and the key", () => {
    expect(() => requireFeature(tenant, "feature.retrieval.local_pgvector")).not.toThrow();
    expect(() => requireFeature(platform, "feature.tts")).not.toThrow();
    for (const key of ["feature.tts", "feature.unknown"]) {
      const err = thrown(() => requireFeature(tenant, key));
      expect(errorReason(err)).toBe("FEATURE_NOT_ENABLED");
      expect(errorMetadata(err)).toEqual({ feature_key: key });
      // Marked for the interceptor to record once.
      expect(takeUnrecordedRefusal(err)).toBe(true);
      expect(takeUnrecordedRefusal(err)).toBe(false);
    }
    expect(hasFeature(tenant, "feature.tts")).toBe(false);
    expect(hasFeature(platform, "feature.tts")).toBe(true);
  });
});

describe("tenantScope", () => {
  it("gives tenant principals their own tenant and refuses others; platform principals must name one", () => {
    expect(tenantScope(tenant, "")).toBe("t1");
    expect(tenantScope(tenant, "t1")).toBe("t1");
    expect(errorReason(thrown(() => tenantScope(tenant, "t2")))).toBe("TENANT_MISMATCH");
    expect(tenantScope(platform, "t9")).toBe("t9");
    expect(errorReason(thrown(() => tenantScope(platform, "")))).toBe("INVALID_ARGUMENT");
  });
});
