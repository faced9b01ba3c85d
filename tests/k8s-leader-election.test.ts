/**
 * Leader election through a Lease and graceful shutdown, against a STAND-IN Kubernetes API
 * server (tests/support/kube-apiserver-standin.ts; no real API server runs here) reached
 * through a kubeconfig: two operators in one process, and `nexus operator` as a user runs it.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOperatorConfig } from "../operator/config.js";
import { runOperator, type RunningOperator } from "../operator/run-operator.js";
import { KubeApiServerStandin } from "./support/kube-apiserver-standin.js";
import { startNexus } from "./support/nexus-process.js";
import { eventually } from "./support/eventually.js";

const SYS = "nexus-system";
let standin: KubeApiServerStandin;
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
  standin = await KubeApiServerStandin.start();
});

afterAll(async () => {
  await standin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("leader election (Lease)", () => {
  it("lets exactly one replica lead; the standby takes over when the leader shuts down", async () => {
    const kubeconfig = standin.writeKubeconfig(dir);
    const a: RunningOperator = await runOperator(loadOperatorConfig(env("replica-a"), { kubeconfig, port: 0 }), pino({ level: "silent" }));
    await eventually("replica-a to lead", () => a.isLeader());
    const b: RunningOperator = await runOperator(loadOperatorConfig(env("replica-b"), { kubeconfig, port: 0 }), pino({ level: "silent" }));
    try {
      // b campaigns every 2 s; give it a few rounds to (wrongly) take over.
      const before = standin.requests.filter((r) => r.path.includes("/leases/nexus-operator-leader")).length;
      await eventually("replica-b to try a few times", () => standin.requests.filter((r) => r.path.includes("/leases/nexus-operator-leader")).length >= before + 4, 15_000);
      expect(a.isLeader()).toBe(true);
      expect(b.isLeader()).toBe(false);
      // The standby is ready (it serves as a hot spare).
      expect((await fetch(`http://127.0.0.1:${b.port}/readyz`)).status).toBe(200);
      expect(await (await fetch(`http://127.0.0.1:${b.port}/metrics`)).text()).toContain("nexus_operator_leader 0");
      await a.stop();
      expect(standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity).toBeUndefined();
      await eventually("replica-b to lead", () => b.isLeader(), 15_000);
      const lease = standin.get("leases", SYS, "nexus-operator-leader");
      expect(lease?.spec.holderIdentity).toBe("replica-b");
      expect(lease?.spec.leaseTransitions).toBe(1);
    } finally {
      await a.stop();
      await b.stop();
    }
  }, 60_000);
});

describe("nexus operator (the command)", () => {
  it("runs from a kubeconfig, serves /readyz, and on SIGTERM releases its Lease and exits 0", async () => {
    const kubeconfig = standin.writeKubeconfig(dir);
    const proc = await startNexus({ args: ["operator", "--kubeconfig", kubeconfig, "--port", "0"], env: env("cli-replica") });
    try {
      await eventually("/readyz 200", async () => (await fetch(`${proc.url}/readyz`)).status === 200, 20_000);
      await eventually("the CLI replica to hold the Lease", () => standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity === "cli-replica", 20_000);
    } finally {
      expect(await proc.stop("SIGTERM")).toBe(0);
    }
    expect(standin.get("leases", SYS, "nexus-operator-leader")?.spec.holderIdentity).toBeUndefined();
  }, 60_000);

  it("refuses to start without a platform key, naming the variable", async () => {
    const { NEXUS_OPERATOR_PLATFORM_KEY: _unused, ...rest } = env("no-key");
    await expect(startNexus({ args: ["operator", "--kubeconfig", standin.writeKubeconfig(dir), "--port", "0"], env: { ...rest, NEXUS_OPERATOR_PLATFORM_KEY: "" }, timeoutMs: 20_000 })).rejects.toThrow(
      /exited with 1[\s\S]*NEXUS_OPERATOR_PLATFORM_KEY is required/,
    );
  });
});
