/**
 * The Failover state machine end to end: the operator against Kubernetes' real CRD API server
 * for the Failovers and the stand-in for ConfigMaps, Secrets, Leases and Deployments
 * (tests/support/kube-cluster.ts) through one kubeconfig,
 * a real PostgreSQL as the target region's database, and a real `nexus dev` whose /readyz the
 * verification step checks.
 */
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadOperatorConfig } from "../operator/config.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { eventually } from "./support/eventually.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { createTestDatabase, describeWithPostgres, type TestDatabase } from "./support/services.js";

type Obj = Record<string, any>;
const SYS = "nexus-system";
const condition = (obj: Obj | undefined, type: string): Obj | undefined => obj?.status?.conditions?.find((c: Obj) => c.type === type);

// Needs PostgreSQL and the real CRD API server; skips (or fails under NEXUS_REQUIRE_SERVICES=1) without either.
const describeHere = crdApiServerAvailable ? describeWithPostgres : describeWithCrdApiServer;

describeHere("Failover (real CRD API server, real PostgreSQL target)", () => {
  let kube: KubeCluster;
  let nexus: NexusProcess;
  let operator: RunningOperator;
  let db: TestDatabase;
  let dir: string;
  // The verification step checks this URL's /readyz. It relays the real `nexus dev` /readyz
  // while `healthy` is true, and answers 503 (a service that lost its database) otherwise.
  let healthy = true;
  const gate = http.createServer((_req, res) => {
    if (!healthy) {
      res.writeHead(503).end();
      return;
    }
    fetch(`${nexus.url}/readyz`).then(
      async (r) => res.writeHead(r.status).end(await r.text()),
      () => res.writeHead(502).end(),
    );
  });

  const failover = (name: string, spec: Obj) =>
    kube.apply({ apiVersion: "nexus.dev/v1alpha1", kind: "Failover", metadata: { name, namespace: SYS }, spec });
  const phaseOf = async (name: string) => (await kube.get("failovers", SYS, name))?.status?.phase as string | undefined;
  const until = (name: string, phase: string, ms = 30_000) =>
    eventually(
      `Failover ${name} to reach ${phase}`,
      async () => ((await phaseOf(name)) === phase ? await kube.get("failovers", SYS, name) : undefined),
      ms,
    );
  const runtime = () => kube.standin.get("configmaps", SYS, "nexus-runtime")?.data ?? {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "nexus-failover-"));
    db = await createTestDatabase("nexus_failover");
    kube = await KubeCluster.start(dir);
    nexus = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "data")] });
    await new Promise<void>((r) => gate.listen(0, "127.0.0.1", r));
    const secret = (name: string, url: string) =>
      kube.standin.apply({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace: SYS },
        data: { DATABASE_URL: Buffer.from(url).toString("base64") },
      });
    secret("db-us-east", db.url);
    secret("db-eu-west", db.url);
    secret("db-nowhere", "postgres://postgres@127.0.0.1:1/none");
    await kube.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "nexus-regions", namespace: SYS },
      data: {
        "us-east": JSON.stringify({ endpoint: "pg.us-east.internal:5432", databaseUrlSecret: "db-us-east" }),
        "eu-west": JSON.stringify({ endpoint: "pg.eu-west.internal:5432", databaseUrlSecret: "db-eu-west" }),
        nowhere: JSON.stringify({ endpoint: "pg.nowhere.internal:5432", databaseUrlSecret: "db-nowhere" }),
      },
    });
    await kube.apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: {
        name: "nexus-auth",
        namespace: SYS,
        labels: { "app.kubernetes.io/part-of": "nexus", "nexus.dev/database-client": "true" },
      },
      spec: { selector: { matchLabels: { app: "auth" } }, template: { metadata: { labels: { app: "auth" } }, spec: { containers: [] } } },
    });
    operator = await runOperator(
      loadOperatorConfig(
        {
          NEXUS_OPERATOR_PLATFORM_KEY: "nxs_unused_by_failovers",
          NEXUS_AUTH_URL: nexus.url,
          NEXUS_METERING_URL: nexus.url,
          NEXUS_OPERATOR_NAMESPACE: SYS,
          NEXUS_FAILOVER_PRIMARY_REGION: "us-east",
          NEXUS_FAILOVER_COOLDOWN_SECONDS: "0",
          NEXUS_FAILOVER_FREEZE_SETTLE_SECONDS: "1",
          NEXUS_FAILOVER_VERIFICATION_TIMEOUT_SECONDS: "20",
          NEXUS_FAILOVER_HEALTH_URLS: `http://127.0.0.1:${(gate.address() as AddressInfo).port}`,
        },
        { kubeconfig: kube.writeKubeconfig(dir), port: 0 },
      ),
      pino({ level: "silent" }),
    );
    await eventually("the operator to lead", async () => operator.isLeader());
    await eventually("the runtime flags", async () => runtime().databaseRegion === "us-east");
  }, 90_000);

  afterAll(async () => {
    await operator?.stop();
    await nexus?.stop();
    await new Promise<void>((r) => gate.close(() => r()));
    await kube?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("runs idle → freeze_writes → precheck → promoting → verification → completed and points the services at the target", async () => {
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "us-east", databaseEndpoint: "pg.us-east.internal:5432" });
    await failover("to-eu", {
      targetRegion: "eu-west",
      reason: "planned maintenance of us-east",
      mode: "Planned",
      maxReplicationLagSeconds: 10,
    });
    const fo = await until("to-eu", "completed");
    expect(fo.status.history.map((h: Obj) => h.phase)).toEqual(["freeze_writes", "precheck", "promoting", "verification", "completed"]);
    expect(fo.status).toMatchObject({
      sourceRegion: "us-east",
      sourceEndpoint: "pg.us-east.internal:5432",
      targetEndpoint: "pg.eu-west.internal:5432",
      replicationLagSeconds: 0,
    });
    expect(condition(fo, "Ready")).toMatchObject({ status: "True", reason: "FailoverCompleted" });
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "eu-west", databaseEndpoint: "pg.eu-west.internal:5432" });
    // Writes were frozen while the run was under way, and thawed only at the end.
    const frozen = kube.standin.history("configmaps", SYS, "nexus-runtime").map((v) => v.data.writeFrozen);
    expect(frozen).toContain("true");
    expect(frozen.at(-1)).toBe("false");
    const dep = kube.standin.get("deployments", SYS, "nexus-auth");
    expect(dep?.spec.template.metadata.annotations["nexus.dev/database-endpoint"]).toBe("pg.eu-west.internal:5432");
    // The completed run gives the one-at-a-time Lease back, stamped for the cooldown.
    const lease = await eventually("the failover Lease to be released", async () => {
      const l = kube.standin.get("leases", SYS, "nexus-failover");
      return l && l.spec.holderIdentity === undefined ? l : undefined;
    });
    expect(lease.metadata.annotations["nexus.dev/last-finished-at"]).toBeTruthy();
    const events = kube.standin
      .list("events", SYS)
      .filter((e) => e.involvedObject.name === "to-eu")
      .map((e) => e.reason);
    expect(events).toContain("PhaseChanged");
  });

  it("rolls a completed failover back when spec.rollback is set", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Failover",
      metadata: { name: "to-eu", namespace: SYS },
      spec: { rollback: true },
    });
    const fo = await until("to-eu", "rolled_back");
    expect(fo.status.history.map((h: Obj) => h.phase).slice(-2)).toEqual(["rollback_pending", "rolled_back"]);
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "us-east", databaseEndpoint: "pg.us-east.internal:5432" });
  });

  it("fails a run whose target is unreachable and rolls back: writes unfrozen, primary unchanged", async () => {
    await failover("to-nowhere", { targetRegion: "nowhere", reason: "drill", mode: "Planned" });
    const fo = await until("to-nowhere", "rolled_back");
    expect(fo.status.history.map((h: Obj) => h.phase)).toEqual(["freeze_writes", "precheck", "failed", "rollback_pending", "rolled_back"]);
    expect(fo.status.failureReason).toBe("TARGET_UNREACHABLE");
    expect(condition(fo, "Degraded")).toMatchObject({ status: "True", reason: "TARGET_UNREACHABLE" });
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "us-east" });
  });

  it("refuses a region missing from the catalog (UNKNOWN_REGION) and one that is already the primary", async () => {
    await failover("to-mars", { targetRegion: "mars", reason: "typo", mode: "Planned" });
    const mars = await until("to-mars", "rolled_back");
    expect(mars.status.failureReason).toBe("UNKNOWN_REGION");
    await failover("to-us", { targetRegion: "us-east", reason: "already there", mode: "Planned" });
    const us = await until("to-us", "rolled_back");
    expect(us.status.failureReason).toBe("TARGET_ALREADY_ACTIVE");
  });

  it("runs one failover at a time: a second waits for the Lease until the first is deleted", async () => {
    // Verification cannot pass while the services are unhealthy: the first run holds the Lease.
    healthy = false;
    await failover("slow", { targetRegion: "eu-west", reason: "first", mode: "Emergency" });
    await until("slow", "verification");
    await failover("second", { targetRegion: "eu-west", reason: "second", mode: "Planned" });
    const waiting = await eventually("the second to wait for the lock", async () => {
      const o = await kube.get("failovers", SYS, "second");
      return condition(o, "Reconciling")?.reason === "WaitingForLock" ? o : undefined;
    });
    expect(waiting.status.phase).toBe("idle");
    expect(runtime().writeFrozen).toBe("true");
    // Deleting a run half-way unfreezes writes and releases the Lease (finalizer).
    await kube.delete("failovers", SYS, "slow");
    await eventually("the first to be gone", async () => (await kube.get("failovers", SYS, "slow")) === undefined);
    await eventually(
      "the second to start",
      async () => (await phaseOf("second")) !== "idle" && (await phaseOf("second")) !== undefined,
      30_000,
    );
    await kube.delete("failovers", SYS, "second");
    await eventually("the second to be gone", async () => (await kube.get("failovers", SYS, "second")) === undefined);
    expect(runtime().writeFrozen).toBe("false");
  }, 60_000);
});
