/**
 * Optimistic concurrency on the tenant API: every Tenant carries its stream version, and
 * changes given an expected_version that is no longer current fail with ABORTED /
 * CONCURRENCY_CONFLICT and change nothing (docs/event-sourcing.md).
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

describeWithPostgres("tenant versions over the API", () => {
  let h: AuthHarness;
  beforeAll(async () => {
    h = await startAuthHarness({});
  });
  afterAll(async () => {
    await h?.close();
  });

  it("Given two operators who read version 1, When both change the tenant with expected_version 1, Then the second is refused and the first change stays", async () => {
    const ops = h.client(h.platformKey);
    const { tenant } = await h.tenant(Plan.FREE);
    const read = (await ops.auth.getTenant({ selector: { case: "tenantId", value: tenant.id } })).tenant;
    expect(read?.version).toBe(1n);

    const first = await ops.auth.setPlan({ tenantId: tenant.id, plan: Plan.PRO, expectedVersion: 1n });
    expect(first.tenant?.version).toBe(2n);
    expect(await failure(() => ops.auth.suspendTenant({ tenantId: tenant.id, reason: "late", expectedVersion: 1n }))).toMatchObject({
      code: "Aborted",
      reason: "CONCURRENCY_CONFLICT",
    });
    const now = (await ops.auth.getTenant({ selector: { case: "tenantId", value: tenant.id } })).tenant;
    expect(now).toMatchObject({ plan: Plan.PRO, version: 2n, suspensionReason: "" });

    // With the version just read, the change goes through; without one, it applies to whatever is current.
    expect((await ops.auth.suspendTenant({ tenantId: tenant.id, reason: "unpaid", expectedVersion: 2n })).tenant?.version).toBe(3n);
    expect(
      (await ops.auth.updateTenant({ tenantId: tenant.id, displayName: "Renamed", updateMask: { paths: ["display_name"] } })).tenant
        ?.version,
    ).toBe(4n);
  });
});
