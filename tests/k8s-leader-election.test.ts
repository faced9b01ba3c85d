/**
 * Leader election through a Lease and graceful shutdown, against the real CRD API server (the
 * CRDs and custom resources the controllers watch) and the stand-in (the Leases) behind one
 * kubeconfig (tests/support/kube-cluster.ts): two operators in one process, and
 * `nexus operator` as a user runs it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadOperatorConfig } from "../operator/config.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { eventually } from "./support/eventually.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { startNexus } from "./support/nexus-process.js";

const SYS = "nexus-system";
let kube: KubeCluster;
let dir: string;

const env = (identity: string) => ({
  NEXUS_OPERATOR_PLATFORM_KEY: "nxs_leader_test_unused",
  NEXUS_AUTH_URL: "http://127.0.0.1:9",
  NEXUS_METERING_URL: "http://127.0.0.1:9",
  NEXUS_OPERATOR_NAMESPACE: SYS,
  NEXUS_OPERATOR_IDENTITY: identity,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nexus-leader-"));
  if (!crdApiServerAvailable) return; // the suites skip (or fail under NEXUS_REQUIRE_SERVICES=1)
  kube = await KubeCluster.start(dir);
});

afterAll(async () => {
  await kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

describeWithCrdApiServer("leader election (Lease)", () => {
  it("lets exactly one replica lead; the standby takes over when the leader shuts down", async () => {
    const kubeconfig = kube.writeKubeconfig(dir);
    const a: RunningOperator = await runOperator(loadOperatorConfig(env("replica-a"), { kubeconfig, port: 0 }), pino({ level: "silent" }));
    await eventually("replica-a to lead", async () => a.isLeader());
    const b: RunningOperator = await runOperator(loadOperatorConfig(env("replica-b"), { kubeconfig, port: 0 }), pino({ level: "silent" }));
    try {
      // b campaigns every 2 s; give it a few rounds to (wrongly) take over.
      const before = kube.requests.filter((r) => r.path.includes("/leases/nexus-operator-leader")).length;
      await eventually(
        "replica-b to try a few times",
        async () => kube.requests.filter((r) => r.path.includes("/leases/nexus-operator-leader")).length >= before + 4,
        15_000,
      );
      expect(a.isLeader()).toBe(true);
      expect(b.isLeader()).toBe(false);
      // The standby is ready (it serves as a hot spare).
      expect((await fetch(`http://127.0.0.1:${b.port}/readyz`)).status).toBe(200);
      expect(await (await fetch(`http://127.0.0.1:${b.port}/metrics`)).text()).toContain("nexus_operator_leader 0");
      await a.stop();
      expect(kube.standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity).toBeUndefined();
      await eventually("replica-b to lead", async () => b.isLeader(), 15_000);
      const lease = kube.standin.get("leases", SYS, "nexus-operator-leader");
      expect(lease?.spec.holderIdentity).toBe("replica-b");
      expect(lease?.spec.leaseTransitions).toBe(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 60_000);
});

describeWithCrdApiServer("nexus operator (the command)", () => {
  it("runs from a kubeconfig, serves /readyz, and on SIGTERM releases its Lease and exits 0", async () => {
    const kubeconfig = kube.writeKubeconfig(dir);
    const proc = await startNexus({ args: ["operator", "--kubeconfig", kubeconfig, "--port", "0"], env: env("cli-replica") });
    try {
      await eventually("/readyz 200", async () => (await fetch(`${proc.url}/readyz`)).status === 200, 20_000);
      await eventually(
        "the CLI replica to hold the Lease",
        async () => kube.standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity === "cli-replica",
        20_000,
      );
    } finally {
      expect(await proc.stop("SIGTERM")).toBe(0);
    }
    expect(kube.standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity).toBeUndefined();
  }, 60_000);

  it("refuses to start without a platform key, naming the variable", async () => {
    const { NEXUS_OPERATOR_PLATFORM_KEY: _unused, ...rest } = env("no-key");
    await expect(
      startNexus({
        args: ["operator", "--kubeconfig", kube.writeKubeconfig(dir), "--port", "0"],
        env: { ...rest, NEXUS_OPERATOR_PLATFORM_KEY: "" },
        timeoutMs: 20_000,
      }),
    ).rejects.toThrow(/exited with 1[\s\S]*NEXUS_OPERATOR_PLATFORM_KEY is required/);
  });
});
