import { describe, expect, it } from "vitest";
import type { Tenant } from "../crds/types.js";
import { oldestClaimant, sameObject } from "./oldest-claimant.js";

const tenant = (namespace: string, name: string, created: string, deleting = false): Tenant => ({
  apiVersion: "nexus.dev/v1alpha1",
  kind: "Tenant",
  metadata: {
    namespace,
    name,
    uid: `${namespace}-${name}`,
    creationTimestamp: created,
    ...(deleting ? { deletionTimestamp: "2025-01-02T00:00:00Z" } : {}),
  },
  spec: { slug: "acme", displayName: "Acme", plan: "pro" },
});

describe("oldestClaimant", () => {
  it("picks the oldest live object, breaking ties by namespace/name whatever the input order", () => {
    const a = tenant("team-b", "acme", "2025-01-01T10:00:00Z");
    const b = tenant("team-a", "acme", "2025-01-01T10:00:00Z");
    const c = tenant("team-c", "acme", "2025-01-01T09:00:00Z", true);
    const d = tenant("team-d", "acme", "2025-01-01T11:00:00Z");
    expect(oldestClaimant([a, b, c, d])?.metadata.namespace).toBe("team-a");
    expect(oldestClaimant([d, c, b, a])?.metadata.namespace).toBe("team-a");
    expect(oldestClaimant([c])).toBeUndefined();
    expect(oldestClaimant([d, c])?.metadata.namespace).toBe("team-d");
  });

  it("compares objects by uid, else by namespace/name", () => {
    const a = tenant("team-a", "acme", "2025-01-01T10:00:00Z");
    expect(sameObject(a, { ...a, metadata: { ...a.metadata } })).toBe(true);
    expect(sameObject(a, { ...a, metadata: { ...a.metadata, uid: "recreated" } })).toBe(false);
    const { uid: _uid, ...noUid } = a.metadata;
    expect(sameObject({ ...a, metadata: noUid }, a)).toBe(true);
  });
});
