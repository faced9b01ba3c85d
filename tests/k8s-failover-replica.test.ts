/**
 * A failover with real databases end to end: a PostgreSQL primary and its streaming replica
 * (our own servers, tests/support/pg-cluster.ts), a running `nexus serve --service auth` on
 * the primary over NATS, and the operator against Kubernetes' real CRD API server for the
 * Failovers and the stand-in for the core kinds (tests/support/kube-cluster.ts).
 *
 * Kubelet is not here either: the test plays its part by copying the runtime ConfigMap's keys
 * into the directory the service reads them from (as kubelet refreshes a mounted ConfigMap),
 * writing each file atomically.
 *
 * What a user would see: replication lag measured on the real replica refuses a Planned
 * failover; a failover promotes the replica (pg_promote), the running service moves its
 * connections there without a restart, and writes made afterwards are in the new primary;
 * a rollback moves it back before writes thaw.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Plan } from "../gen/nexus/auth/v1/tenant_pb.js";
import { loadOperatorConfig } from "../operator/config.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { generateApiKey } from "../services/auth/domain/api-key-secret.js";
import { createNexusClient, type NexusClient } from "../services/client/create-nexus-client.js";
import { errorReason } from "../services/kernel/errors.js";
import { connectNats } from "../services/kernel/events/nats-streams.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { eventually } from "./support/eventually.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";
import { describeWithPostgresBinaries, type PgCluster, postgresBinDir, startPrimary, startReplica } from "./support/pg-cluster.js";
import { describeWithNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

type Obj = Record<string, any>;
const SYS = "nexus-system";
const describeHere = !crdApiServerAvailable ? describeWithCrdApiServer : postgresBinDir() ? describeWithNats : describeWithPostgresBinaries;

describeHere("Failover with a real primary and streaming replica", () => {
  let primary: PgCluster;
  let replica: PgCluster;
  let kube: KubeCluster;
  let nexus: NexusProcess;
  let operator: RunningOperator;
  let ops: NexusClient;
  let dir: string;
  let runtimeDir: string;
  let kubelet: NodeJS.Timeout | undefined;
  const token = uniqueToken("fo").toUpperCase();
  const platform = generateApiKey();

  const failover = (name: string, spec: Obj) =>
    kube.apply({ apiVersion: "nexus.dev/v1alpha1", kind: "Failover", metadata: { name, namespace: SYS }, spec });
  const until = (name: string, phase: string, ms = 60_000) =>
    eventually(
      `Failover ${name} to reach ${phase}`,
      async () => {
        const fo = await kube.get("failovers", SYS, name);
        if (fo?.status?.phase === phase) return fo;
        // Thrown, so a timeout names where the Failover stood (phase, conditions).
        throw new Error(`phase ${fo?.status?.phase ?? "(none)"}, conditions ${JSON.stringify(fo?.status?.conditions ?? [])}`);
      },
      ms,
    );
  const runtime = () => kube.standin.get("configmaps", SYS, "nexus-runtime")?.data ?? {};
  const readyz = async () => (await (await fetch(`${nexus.url}/readyz`)).json()) as Obj;
  const databaseEndpoint = async () =>
    (await readyz()).checks.find((c: Obj) => c.name === "database")?.info?.endpoint as string | undefined;
  const tenantIn = async (db: PgCluster, slug: string) =>
    (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM auth.tenants WHERE slug = '${slug}'`, "nexus"))[0]!.n;
  /**
   * A write as a well-behaved client makes it: WRITE_FROZEN says "retry shortly", and the
   * service sees a thaw up to a poll interval after the flag changes.
   */
  const createTenant = (slug: string, displayName: string) =>
    eventually(`CreateTenant ${slug} past the freeze`, async () => {
      try {
        return await ops.auth.createTenant({ slug, displayName, plan: Plan.PRO });
      } catch (err) {
        if (errorReason(err) === "WRITE_FROZEN") return undefined;
        throw err;
      }
    });
  const inRecovery = async (db: PgCluster) => (await db.query<{ r: boolean }>("SELECT pg_is_in_recovery() AS r"))[0]!.r;

  /** Kubelet's part: mirror the runtime ConfigMap into files, each replaced atomically. */
  function mirrorRuntimeConfigMap(): void {
    for (const [key, value] of Object.entries(runtime() as Record<string, string>)) {
      const file = join(runtimeDir, key);
      if (existsSync(file) && readFileSync(file, "utf8") === value) continue;
      writeFileSync(`${file}.tmp`, value);
      renameSync(`${file}.tmp`, file);
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "nexus-failover-replica-"));
    runtimeDir = join(dir, "runtime");
    mkdirSync(runtimeDir);
    primary = await startPrimary();
    await primary.query("CREATE DATABASE nexus");
    replica = await startReplica(primary);
    expect(await inRecovery(replica)).toBe(true);

    kube = await KubeCluster.start(dir);
    const secret = (name: string, url: string) =>
      kube.standin.apply({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name, namespace: SYS },
        data: { DATABASE_URL: Buffer.from(url).toString("base64") },
      });
    secret("db-east", primary.url("nexus"));
    secret("db-west", replica.url("nexus"));
    await kube.apply({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "nexus-regions", namespace: SYS },
      data: {
        east: JSON.stringify({ endpoint: primary.endpoint, databaseUrlSecret: "db-east" }),
        west: JSON.stringify({ endpoint: replica.endpoint, databaseUrlSecret: "db-west" }),
      },
    });

    nexus = await startNexus({
      args: ["serve", "--service", "auth", "--port", "0", "--host", "127.0.0.1"],
      env: {
        DATABASE_URL: primary.url("nexus"),
        NATS_URL: TEST_NATS_URL,
        NEXUS_SUBJECT_PREFIX: uniqueToken("fo"),
        NEXUS_NATS_STREAM: `EVENTS_${token}`,
        NEXUS_DLQ_STREAM: `DLQ_${token}`,
        NEXUS_WRITE_FREEZE_FILE: join(runtimeDir, "writeFrozen"),
        NEXUS_DATABASE_ENDPOINT_FILE: join(runtimeDir, "databaseEndpoint"),
        NEXUS_BOOTSTRAP_KEY_ID: platform.keyId,
        NEXUS_BOOTSTRAP_KEY_SHA256: Buffer.from(platform.digest).toString("hex"),
        OTEL_SDK_DISABLED: "true",
        LOG_LEVEL: "info",
      },
    });
    ops = createNexusClient({ baseUrl: nexus.url, apiKey: platform.plaintext });

    operator = await runOperator(
      loadOperatorConfig(
        {
          NEXUS_OPERATOR_PLATFORM_KEY: platform.plaintext,
          NEXUS_AUTH_URL: nexus.url,
          NEXUS_METERING_URL: nexus.url,
          NEXUS_OPERATOR_NAMESPACE: SYS,
          NEXUS_FAILOVER_PRIMARY_REGION: "east",
          NEXUS_FAILOVER_COOLDOWN_SECONDS: "0",
          NEXUS_FAILOVER_FREEZE_SETTLE_SECONDS: "1",
          NEXUS_FAILOVER_VERIFICATION_TIMEOUT_SECONDS: "30",
          NEXUS_FAILOVER_HEALTH_URLS: nexus.url,
        },
        { kubeconfig: kube.writeKubeconfig(dir), port: 0 },
      ),
      pino({ level: "silent" }),
    );
    await eventually("the operator to lead", async () => operator.isLeader());
    await eventually("the runtime flags", async () => runtime().databaseEndpoint === primary.endpoint);
    mirrorRuntimeConfigMap();
    kubelet = setInterval(mirrorRuntimeConfigMap, 100);
  }, 120_000);

  afterAll(async () => {
    clearInterval(kubelet);
    await operator?.stop();
    await nexus?.stop();
    await kube?.close();
    const nc = await connectNats({ servers: TEST_NATS_URL }).catch(() => undefined);
    if (nc) {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`EVENTS_${token}`).catch(() => undefined);
      await jsm.streams.delete(`DLQ_${token}`).catch(() => undefined);
      await nc.close();
    }
    await replica?.destroy();
    await primary?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports the database endpoint it uses in /readyz", async () => {
    expect(await databaseEndpoint()).toBe(primary.endpoint);
  });

  it("refuses a Planned failover to a replica whose replay lags beyond the threshold, leaving the primary in charge", async () => {
    // Stop replay on the replica, let its last replayed commit age, then write on the primary:
    // the replica receives the WAL but does not apply it, so its data is stale.
    await replica.query("SELECT pg_wal_replay_pause()");
    await eventually(
      "replay to pause",
      async () => (await replica.query<{ s: string }>("SELECT pg_get_wal_replay_pause_state() AS s"))[0]!.s === "paused",
    );
    await new Promise((r) => setTimeout(r, 2_000));
    const slug = uniqueToken("lag");
    await createTenant(slug, "Written while the replica is paused");
    await eventually(
      "the replica to receive WAL it has not replayed",
      async () =>
        (await replica.query<{ behind: boolean }>("SELECT pg_last_wal_receive_lsn() > pg_last_wal_replay_lsn() AS behind"))[0]!.behind,
    );

    await failover("lagging", { targetRegion: "west", reason: "drill with a stale replica", mode: "Planned", maxReplicationLagSeconds: 1 });
    const fo = await until("lagging", "rolled_back");
    expect(fo.status.failureReason).toBe("REPLICATION_LAG_TOO_HIGH");
    expect(fo.status.replicationLagSeconds).toBeGreaterThan(1);
    expect(fo.status.history.map((h: Obj) => h.phase)).toEqual(["freeze_writes", "precheck", "failed", "rollback_pending", "rolled_back"]);
    expect(await inRecovery(replica)).toBe(true);
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "east", databaseEndpoint: primary.endpoint });

    await replica.query("SELECT pg_wal_replay_resume()");
    await eventually("the replica to catch up", async () => (await tenantIn(replica, slug)) === 1);
    await kube.delete("failovers", SYS, "lagging");
    await eventually("the lagging run to be gone", async () => (await kube.get("failovers", SYS, "lagging")) === undefined);
  }, 90_000);

  it("promotes the caught-up replica and moves the running service onto it: writes made afterwards are in the new primary", async () => {
    const pid = nexus.child.pid;
    const before = uniqueToken("before");
    await createTenant(before, "Before the failover");
    await eventually("the replica to replay it", async () => (await tenantIn(replica, before)) === 1);

    await failover("to-west", {
      targetRegion: "west",
      reason: "planned maintenance of east",
      mode: "Planned",
      maxReplicationLagSeconds: 5,
    });
    const fo = await until("to-west", "completed");
    expect(fo.status.history.map((h: Obj) => h.phase)).toEqual(["freeze_writes", "precheck", "promoting", "verification", "completed"]);
    expect(fo.status).toMatchObject({ sourceRegion: "east", sourceEndpoint: primary.endpoint, targetEndpoint: replica.endpoint });
    expect(await inRecovery(replica)).toBe(false);
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "west", databaseEndpoint: replica.endpoint });
    // Writes were thawed only once the service reported the new endpoint.
    expect(await databaseEndpoint()).toBe(replica.endpoint);
    expect(nexus.child.pid).toBe(pid);
    expect(nexus.output()).toContain(`database endpoint switched from ${primary.endpoint} to ${replica.endpoint}`);

    const after = uniqueToken("after");
    await createTenant(after, "After the failover");
    expect(await tenantIn(replica, after)).toBe(1);
    expect(await tenantIn(primary, after)).toBe(0);
    // What was written before the failover is there too, and reads go to the new primary.
    const { tenants } = await ops.auth.listTenants({ pageSize: 100 });
    expect(tenants.map((t) => t.slug)).toEqual(expect.arrayContaining([before, after]));
  }, 90_000);

  it("rolls back: the service returns to the old primary before writes thaw", async () => {
    await kube.apply({
      apiVersion: "nexus.dev/v1alpha1",
      kind: "Failover",
      metadata: { name: "to-west", namespace: SYS },
      spec: { rollback: true },
    });
    const fo = await until("to-west", "rolled_back");
    expect(fo.status.history.map((h: Obj) => h.phase).slice(-2)).toEqual(["rollback_pending", "rolled_back"]);
    expect(runtime()).toMatchObject({ writeFrozen: "false", databaseRegion: "east", databaseEndpoint: primary.endpoint });
    expect(await databaseEndpoint()).toBe(primary.endpoint);
    const back = uniqueToken("back");
    await createTenant(back, "After the rollback");
    expect(await tenantIn(primary, back)).toBe(1);
    expect(await tenantIn(replica, back)).toBe(0);
  }, 90_000);
});
