/**
 * The operator and the CRDs against Kubernetes' REAL CRD API server (k8s.io/apiextensions-apiserver
 * on etcd, tests/support/crd-apiserver.ts) — what the stand-in cannot show: OpenAPI and CEL
 * validation with their messages, defaulting, pruning, status validation, server-side-apply
 * field ownership across a CRD upgrade, printer columns in `kubectl get`, `kubectl wait`.
 *
 * nexus.dev and apiextensions.k8s.io go to the real server; Secrets, Events, Leases and
 * ConfigMaps (which it does not serve) to the stand-in, joined behind one URL by KubeRouter.
 * The Nexus side is a real `nexus dev` process. kubectl is the one from scripts/kubectl.sh.
 */
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadOperatorConfig } from "../operator/config.js";
import { type CustomResourceDefinition, nexusCrds } from "../operator/crds/index.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { type CrdApiServer, describeWithCrdApiServer, KubeRouter, startCrdApiServer } from "./support/crd-apiserver.js";
import { celRuleMessages } from "./support/crd-rules.js";
import { eventually } from "./support/eventually.js";
import { KubeApiServerStandin } from "./support/kube-apiserver-standin.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";

type Obj = Record<string, any>;
const run = promisify(execFile);
const NS = "team-real";
const dir = mkdtempSync(join(tmpdir(), "nexus-k8s-real-"));

let real: CrdApiServer;
let standin: KubeApiServerStandin;
let router: KubeRouter;
let operator: RunningOperator | undefined;
let nexus: NexusProcess;
let realKubeconfig: string;

const platformKeyId = randomBytes(12).toString("hex");
const platformKey = `nxs_${platformKeyId}_${randomBytes(32).toString("base64url")}`;

/** One API call through the router (as the operator's client makes it). */
async function kube(
  method: string,
  path: string,
  body?: unknown,
  contentType = "application/json",
): Promise<{ status: number; body: Obj }> {
  const res = await fetch(`${router.url}${path}`, {
    method,
    headers: { "content-type": contentType, accept: "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: Obj;
  try {
    parsed = JSON.parse(text) as Obj;
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: parsed };
}
const nsPath = (plural: string, name?: string) => `/apis/nexus.dev/v1alpha1/namespaces/${NS}/${plural}${name ? `/${name}` : ""}`;
const create = (plural: string, obj: Obj) =>
  kube("POST", nsPath(plural), { apiVersion: "nexus.dev/v1alpha1", ...obj, metadata: { namespace: NS, ...obj.metadata } });
const mergePatch = (plural: string, name: string, patch: Obj) => kube("PATCH", nsPath(plural, name), patch, "application/merge-patch+json");
const getObj = async (plural: string, name: string) => (await kube("GET", nsPath(plural, name))).body;
const condition = (o: Obj | undefined, type: string): Obj | undefined => o?.status?.conditions?.find((c: Obj) => c.type === type);

const kubectl = (...args: string[]) => run("bash", ["scripts/kubectl.sh", "--kubeconfig", realKubeconfig, ...args], { timeout: 60_000 });

/** The Tenant CRD as an older release shipped it: one more spec field, `legacyNote`, applied by Helm. */
function oldTenantCrd(): CustomResourceDefinition {
  const crd = structuredClone(nexusCrds()[0]!) as Obj;
  crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.legacyNote = {
    type: "string",
    description: "Removed in a later release.",
  };
  return crd as CustomResourceDefinition;
}

describeWithCrdApiServer("the real CRD API server (apiextensions-apiserver on etcd)", () => {
  beforeAll(async () => {
    real = await startCrdApiServer(join(dir, "apiserver"));
    realKubeconfig = real.writeKubeconfig(dir, NS);
    standin = await KubeApiServerStandin.start();
    router = await KubeRouter.start(real.url, standin);

    // A cluster on the previous release: its CRDs applied by another field manager (Helm), and
    // objects that use the field the new release removes.
    const old = oldTenantCrd();
    const applied = await kube(
      "PATCH",
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${old.metadata.name}?fieldManager=helm`,
      old,
      "application/apply-patch+yaml",
    );
    expect(applied.status, JSON.stringify(applied.body)).toBe(201);
    await eventually("the old Tenant CRD to be established", async () => {
      const crd = (await kube("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${old.metadata.name}`)).body;
      return condition(crd, "Established")?.status === "True";
    });
    const legacy = await eventually("the old Tenant to be stored", async () => {
      const r = await create("tenants", {
        kind: "Tenant",
        metadata: { name: "legacy" },
        spec: { slug: "legacy", displayName: "Legacy", plan: "free", legacyNote: "from the old release" },
      });
      return r.status === 201 ? r.body : undefined;
    });
    expect(legacy.spec.legacyNote).toBe("from the old release");

    nexus = await startNexus({
      args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "data")],
      env: { NEXUS_BOOTSTRAP_KEY_ID: platformKeyId, NEXUS_BOOTSTRAP_KEY_SHA256: createHash("sha256").update(platformKey).digest("hex") },
    });
    const config = loadOperatorConfig(
      {
        NEXUS_OPERATOR_PLATFORM_KEY: platformKey,
        NEXUS_AUTH_URL: nexus.url,
        NEXUS_METERING_URL: nexus.url,
        NEXUS_OPERATOR_NAMESPACE: "nexus-system",
        NEXUS_OPERATOR_IDENTITY: "operator-real-0",
        // Long on purpose: a deleted key Secret must be noticed through the watch, not a resync.
        NEXUS_OPERATOR_RESYNC_SECONDS: "600",
      },
      { kubeconfig: router.writeKubeconfig(dir, NS), port: 0 },
    );
    operator = await runOperator(config, pino({ level: "silent" }));
    await eventually("the operator to lead", () => operator?.isLeader());
  }, 90_000);

  afterAll(async () => {
    await operator?.stop();
    await nexus?.stop();
    await router?.close();
    await standin?.close();
    await real?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  describe("operator against the real CRD API server", () => {
    it("routes custom resources to the real server and core kinds to the stand-in", () => {
      const to = (frag: string) => new Set(router.routed.filter((r) => r.path.includes(frag)).map((r) => r.to));
      expect(to("/customresourcedefinitions/")).toEqual(new Set(["real"]));
      expect(to("/apis/nexus.dev/")).toEqual(new Set(["real"]));
      expect(to("/leases/")).toEqual(new Set(["standin"]));
    });

    it("server-side applies the newer CRDs over an older release's, taking over Helm's fields, with old objects stored", async () => {
      for (const crd of nexusCrds()) {
        // Established follows the apply by a moment (the server starts serving the new schema).
        const stored = await eventually(`${crd.metadata.name} Established`, async () => {
          const o = (await kube("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`)).body;
          return condition(o, "Established")?.status === "True" ? o : undefined;
        });
        const managers = (stored.metadata.managedFields as Obj[]).map((m) => m.manager);
        expect(managers).toContain("nexus-operator");
      }
      const tenantCrd = (await kube("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/tenants.nexus.dev")).body;
      expect(tenantCrd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.legacyNote).toBeUndefined();
      // The old object is still served; the removed field is pruned when read from storage, and
      // writing the object works under the new schema.
      const legacy = await eventually("the legacy Tenant without the removed field", async () => {
        const o = await getObj("tenants", "legacy");
        return o.metadata && o.spec.legacyNote === undefined ? o : undefined;
      });
      expect(legacy.spec).toMatchObject({ slug: "legacy", displayName: "Legacy", plan: "free" });
      const renamed = await mergePatch("tenants", "legacy", { spec: { displayName: "Legacy Renamed", legacyNote: "again" } });
      expect(renamed.status).toBe(200);
      expect(renamed.body.spec.displayName).toBe("Legacy Renamed");
      expect(renamed.body.spec.legacyNote).toBeUndefined();
    });

    it("reaches Ready on a real server; its key Secrets are controlled by the Tenant", async () => {
      const r = await create("tenants", {
        kind: "Tenant",
        metadata: { name: "acme" },
        spec: {
          slug: `acme-${randomBytes(3).toString("hex")}`,
          displayName: "Acme",
          plan: "pro",
          apiKeys: [{ name: "ci", role: "admin", secretName: "acme-ci-key" }],
        },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
      // kubectl wait as a user would, against the real server.
      const waited = await kubectl("wait", "--for=condition=Ready", "tenant/acme", "--timeout=45s");
      expect(waited.stdout).toContain("tenant.nexus.dev/acme condition met");
      const tenant = await getObj("tenants", "acme");
      const secret = standin.get("secrets", NS, "acme-ci-key");
      expect(secret?.metadata.ownerReferences).toEqual([
        {
          apiVersion: "nexus.dev/v1alpha1",
          kind: "Tenant",
          name: "acme",
          uid: tenant.metadata.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ]);
    }, 60_000);

    it("rewrites a deleted key Secret within seconds (watched, not left to the 10-minute resync)", async () => {
      const before = standin.get("secrets", NS, "acme-ci-key");
      expect(before).toBeDefined();
      const oldKeyId = before?.metadata.annotations["nexus.dev/api-key-id"];
      standin.delete("secrets", NS, "acme-ci-key");
      const rewritten = await eventually(
        "a new key Secret",
        () => {
          const s = standin.get("secrets", NS, "acme-ci-key");
          return s && s.metadata.annotations["nexus.dev/api-key-id"] !== oldKeyId ? s : undefined;
        },
        10_000,
      );
      expect(rewritten.data.apiKey).toBeTruthy();
      await eventually(
        "the Tenant Ready with the new key",
        async () => {
          const t = await getObj("tenants", "acme");
          return (
            condition(t, "Ready")?.status === "True" &&
            t.status.apiKeys?.[0]?.keyId === rewritten.metadata.annotations["nexus.dev/api-key-id"]
          );
        },
        15_000,
      );
    }, 30_000);

    it("kubectl get tenants,quotas,failovers prints the printer columns", async () => {
      const q = await create("quotas", {
        kind: "Quota",
        metadata: { name: "acme" },
        spec: { tenantRef: { name: "acme" }, monthly: { runs: 100 } },
      });
      expect(q.status, JSON.stringify(q.body)).toBe(201);
      const f = await create("failovers", {
        kind: "Failover",
        metadata: { name: "drill" },
        spec: { targetRegion: "eu-west-1", reason: "drill" },
      });
      expect(f.status, JSON.stringify(f.body)).toBe(201);
      await eventually("the Quota to show its limit", async () => (await getObj("quotas", "acme")).status?.limit);
      const { stdout } = await kubectl("get", "tenants,quotas,failovers");
      const headers = stdout.split("\n").filter((l) => l.startsWith("NAME"));
      expect(headers).toHaveLength(3);
      // The columns the CRDs declare with priority 0 (the rest show with -o wide), in order.
      const columns = nexusCrds()
        .filter((crd) => ["Tenant", "Quota", "Failover"].includes(crd.spec.names.kind))
        .map((crd) =>
          [
            "NAME",
            ...(crd.spec.versions[0]?.additionalPrinterColumns ?? []).filter((c) => !c.priority).map((c) => c.name.toUpperCase()),
          ].join(" "),
        );
      expect(headers.map((h) => h.split(/\s{2,}/).join(" "))).toEqual(columns);
      expect(columns[0]).toBe("NAME READY PLAN USAGE AGE");
      expect(stdout).toMatch(/tenant\.nexus\.dev\/acme\s+True\s+pro\s/);
      expect(stdout).toMatch(/quota\.nexus\.dev\/acme\s+acme\s+0 runs\s+100 runs\s/);
      expect(stdout).toMatch(/failover\.nexus\.dev\/drill\s+[a-z_]+\s+eu-west-1\s/);
      // The phase the Failover is in, with when it entered it, for the NexusFailoverStuck alert.
      // (Polled: the failover may move on between the two reads.)
      await eventually(
        "the failover's phase in /metrics",
        async () => {
          const fo = await getObj("failovers", "drill");
          const metrics = await (await fetch(`http://127.0.0.1:${operator?.port}/metrics`)).text();
          const want = `nexus_operator_failover_phase_started_timestamp_seconds{namespace="${NS}",name="drill",phase="${fo.status?.phase}"} ${Date.parse(fo.status?.phaseStartedAt) / 1000}`;
          return metrics.split("\n").includes(want) ? true : undefined;
        },
        10_000,
      );
    }, 30_000);
  });

  describe("CRD validation on the real server", () => {
    const tenant = (name: string, spec: Obj = {}) => ({
      kind: "Tenant",
      metadata: { name },
      spec: { slug: name, displayName: name, plan: "free", ...spec },
    });
    /**
     * Every CEL rule message the Tenant, Quota and Failover CRDs carry, so a rule added without a
     * test here fails the suite (SenderApp, Destination and Workflow: tests/k8s-integration-resources.test.ts).
     */
    const allMessages = () => celRuleMessages(["Tenant", "Quota", "Failover"]);
    const refused: string[] = [];
    const expectRefused = async (r: Promise<{ status: number; body: Obj }>, message: string) => {
      const { status, body } = await r;
      expect(status, JSON.stringify(body)).toBe(422);
      expect(body.reason).toBe("Invalid");
      expect(body.message).toContain(message);
      refused.push(message);
    };

    it("each CEL rule refuses what it should, with its message", async () => {
      expect((await create("tenants", tenant("cel-t"))).status).toBe(201);
      await expectRefused(mergePatch("tenants", "cel-t", { spec: { slug: "other" } }), "slug is immutable");
      await expectRefused(
        create(
          "tenants",
          tenant("cel-dup", {
            apiKeys: [
              { name: "a", role: "viewer", secretName: "s" },
              { name: "b", role: "viewer", secretName: "s" },
            ],
          }),
        ),
        "each API key needs its own secretName",
      );
      const quota = (name: string, spec: Obj) =>
        create("quotas", { kind: "Quota", metadata: { name }, spec: { tenantRef: { name: "x" }, ...spec } });
      await expectRefused(quota("cel-q1", { daily: { runs: 11 }, monthly: { runs: 10 } }), "daily.runs cannot exceed monthly.runs");
      await expectRefused(
        quota("cel-q2", { daily: { runUnits: 11 }, monthly: { runUnits: 10 } }),
        "daily.runUnits cannot exceed monthly.runUnits",
      );
      await expectRefused(quota("cel-q3", { softCapRatio: 1.5 }), "softCapRatio must be greater than 0 and at most 1");
      await expectRefused(quota("cel-q4", { softCapRatio: 0 }), "softCapRatio must be greater than 0 and at most 1");
      expect(
        (
          await create("failovers", {
            kind: "Failover",
            metadata: { name: "cel-f" },
            spec: { targetRegion: "a", reason: "r", rollback: true },
          })
        ).status,
      ).toBe(201);
      await expectRefused(
        mergePatch("failovers", "cel-f", { spec: { targetRegion: "b" } }),
        "targetRegion is immutable: create a new Failover",
      );
      await expectRefused(mergePatch("failovers", "cel-f", { spec: { mode: "Emergency" } }), "mode is immutable");
      await expectRefused(mergePatch("failovers", "cel-f", { spec: { rollback: false } }), "a requested rollback cannot be withdrawn");
      // The valid cases pass: a quota within its limits, an unchanged failover.
      expect((await quota("cel-ok", { daily: { runs: 10 }, monthly: { runs: 10 }, softCapRatio: 1 })).status).toBe(201);
      expect(new Set(refused)).toEqual(new Set(allMessages()));
    });

    it("applies the schema defaults", async () => {
      const t = await create("tenants", tenant("defaults-t"));
      expect(t.body.spec.suspended).toBe(false);
      const q = await create("quotas", { kind: "Quota", metadata: { name: "defaults-q" }, spec: { tenantRef: { name: "x" } } });
      expect(q.body.spec).toMatchObject({ softCapRatio: 0.8, hardCapMode: "Enforce" });
      const f = await create("failovers", { kind: "Failover", metadata: { name: "defaults-f" }, spec: { targetRegion: "a", reason: "r" } });
      expect(f.body.spec).toMatchObject({ mode: "Planned", maxReplicationLagSeconds: 10, rollback: false });
    });

    it("prunes unknown fields and refuses values outside the schema", async () => {
      const t = await create("tenants", { ...tenant("pruned-t"), extra: 1, spec: { ...tenant("pruned-t").spec, colour: "blue" } });
      expect(t.status).toBe(201);
      expect(t.body.extra).toBeUndefined();
      expect(t.body.spec.colour).toBeUndefined();
      const bad = await create("tenants", tenant("bad-plan", { plan: "platinum" }));
      expect(bad.status).toBe(422);
      expect(bad.body.message).toContain('spec.plan: Unsupported value: "platinum"');
    });

    it("refuses a status condition that breaks the condition schema", async () => {
      const t = (await create("tenants", tenant("status-t"))).body;
      const write = (cond: Obj) =>
        kube("PUT", `${nsPath("tenants", "status-t")}/status`, {
          ...t,
          status: { conditions: [{ type: "Ready", lastTransitionTime: "2026-01-01T00:00:00Z", message: "m", ...cond }] },
        });
      const badStatus = await write({ status: "Maybe", reason: "Fine" });
      expect(badStatus.status).toBe(422);
      expect(badStatus.body.message).toContain('status.conditions[0].status: Unsupported value: "Maybe"');
      const badReason = await write({ status: "True", reason: "not a reason!" });
      expect(badReason.status).toBe(422);
      expect(badReason.body.message).toContain("status.conditions[0].reason");
      const good = await write({ status: "True", reason: "Ready" });
      expect(good.status).toBe(200);
      // The status subresource ignores spec changes sent with it.
      const specViaStatus = await kube("PUT", `${nsPath("tenants", "status-t")}/status`, {
        ...good.body,
        spec: { ...good.body.spec, plan: "pro" },
      });
      expect(specViaStatus.body.spec.plan).toBe("free");
    });
  });
});
