/**
 * Saga status over the API (EventStoreService.GetSaga / ListSagas): tenant admins see their own
 * tenant's sagas and nothing else; platform operators see every saga; steps, compensations and
 * the errors of failed attempts come from the saga's stream.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { SagaStatus, SagaStep_State } from "../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { runSaga, type SagaDefinition, startSaga } from "../services/kernel/sagas/index.js";
import { type AuthHarness, failure, startAuthHarness } from "./support/auth-harness.js";
import { runNexusCli } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

/** Two steps; `refuse` makes the second fail, so the saga compensates the first. */
const twoSteps: SagaDefinition<{ refuse: boolean }> = {
  name: "two-steps",
  maxAttempts: 2,
  retryDelayMs: 1,
  steps: [
    { name: "first", run: async () => {}, compensate: async () => {} },
    {
      name: "second",
      run: async ({ input }) => {
        if (input.refuse) throw new Error("the second step is refused");
      },
    },
  ],
};

describeWithPostgres("saga status over the API", () => {
  let h: AuthHarness;
  let a: { id: string; owner: string };
  let b: { id: string; owner: string };

  beforeAll(async () => {
    h = await startAuthHarness({ services: ["auth", "metering"] });
    const ta = await h.tenant();
    const tb = await h.tenant();
    a = { id: ta.tenant.id, owner: ta.ownerKey };
    b = { id: tb.tenant.id, owner: tb.ownerKey };
    const db = h.nexus.db;
    const run = async (sagaId: string, tenantId: string | undefined, refuse: boolean) => {
      await startSaga(db, twoSteps, { sagaId, input: { refuse }, ...(tenantId ? { tenantId } : {}) });
      await runSaga(db, twoSteps, sagaId, { sleep: async () => {} });
    };
    await run("a-done", a.id, false);
    await run("a-undone", a.id, true);
    await run("b-done", b.id, false);
    await run("installation-wide", undefined, false);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("Given a tenant admin, When they read their tenant's saga, Then they get its steps, compensations and errors", async () => {
    const { saga } = await h.client(a.owner).events.getSaga({ sagaId: "a-undone" });
    expect(saga).toMatchObject({ sagaId: "a-undone", name: "two-steps", status: SagaStatus.COMPENSATED, tenantId: a.id });
    expect(saga?.reason).toContain("step second failed 2 times");
    expect(saga?.steps.map((s) => [s.name, s.state, s.attempts, s.compensationAttempts])).toEqual([
      ["first", SagaStep_State.COMPENSATED, 1, 1],
      ["second", SagaStep_State.COMPENSATED, 2, 1],
    ]);
    expect(saga?.errors.map((e) => [e.step, e.attempt, e.compensation, e.error])).toEqual([
      ["second", 1, false, "the second step is refused"],
      ["second", 2, false, "the second step is refused"],
    ]);
    const listed = await h.client(a.owner).events.listSagas({});
    expect(listed.sagas.map((s) => [s.sagaId, s.status])).toEqual([
      ["a-undone", SagaStatus.COMPENSATED],
      ["a-done", SagaStatus.COMPLETED],
    ]);
  });

  it("Given a tenant admin, When they ask for another tenant's or an installation-wide saga, Then it is NOT_FOUND; another tenant_id is TENANT_MISMATCH; a viewer is refused", async () => {
    const client = h.client(a.owner);
    expect((await failure(() => client.events.getSaga({ sagaId: "b-done" }))).code).toBe("NotFound");
    expect((await failure(() => client.events.getSaga({ sagaId: "installation-wide" }))).code).toBe("NotFound");
    expect((await failure(() => client.events.getSaga({ sagaId: "no-such-saga" }))).code).toBe("NotFound");
    expect(await failure(() => client.events.listSagas({ tenantId: b.id }))).toMatchObject({
      code: "PermissionDenied",
      reason: "TENANT_MISMATCH",
    });
    const viewer = await h.key(a.id, Role.VIEWER, "viewer");
    expect(await failure(() => h.client(viewer.plaintext).events.getSaga({ sagaId: "a-done" }))).toMatchObject({
      code: "PermissionDenied",
      reason: "RBAC_FORBIDDEN",
    });
    expect((await failure(() => client.events.getSaga({ sagaId: "bad id!" }))).code).toBe("InvalidArgument");
  });

  it("Given a platform operator, When they list sagas, Then they see every tenant's and the installation's, page by page, and can filter by tenant and name", async () => {
    const ops = h.client(h.platformKey);
    const all = await ops.events.listSagas({});
    expect(all.sagas.map((s) => s.sagaId)).toEqual(["installation-wide", "b-done", "a-undone", "a-done"]);
    const page1 = await ops.events.listSagas({ pageSize: 3 });
    expect(page1.sagas.map((s) => s.sagaId)).toEqual(["installation-wide", "b-done", "a-undone"]);
    const page2 = await ops.events.listSagas({ pageSize: 3, pageToken: page1.nextPageToken });
    expect(page2).toMatchObject({ sagas: [expect.objectContaining({ sagaId: "a-done" })], nextPageToken: "" });
    expect((await failure(() => ops.events.listSagas({ pageSize: 3, tenantId: b.id, pageToken: page1.nextPageToken }))).reason).toBe(
      "INVALID_CURSOR",
    );
    expect((await ops.events.listSagas({ tenantId: b.id })).sagas.map((s) => s.sagaId)).toEqual(["b-done"]);
    expect((await ops.events.listSagas({ name: "tenant-offboarding" })).sagas).toEqual([]);
    const { saga } = await ops.events.getSaga({ sagaId: "b-done" });
    expect(saga).toMatchObject({ status: SagaStatus.COMPLETED, tenantId: b.id, steps: [expect.anything(), expect.anything()] });
  });

  it("Given `nexus sagas status|list --api`, Then the CLI shows the saga through the API with the caller's key", async () => {
    const status = await runNexusCli(["sagas", "status", "a-undone", "--api", "--url", h.url], { NEXUS_API_KEY: a.owner });
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/status\s+compensated/);
    expect(status.stdout).toMatch(/second\s+compensated\s+2\s+1/);
    expect(status.stdout).toContain("the second step is refused");
    const list = await runNexusCli(["sagas", "list", "--url", h.url, "--json"], { NEXUS_API_KEY: h.platformKey });
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as { sagas: { sagaId: string }[] }).sagas.map((x) => x.sagaId)).toHaveLength(4);
    const other = await runNexusCli(["sagas", "status", "b-done", "--api", "--url", h.url], { NEXUS_API_KEY: a.owner });
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain("no saga b-done");
  });
});
