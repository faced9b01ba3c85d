/**
 * The documented production path (docs/kubernetes.md, "Production: CloudNativePG and clustered
 * NATS"): the worked example in k8s/production/ — CloudNativePG Clusters with a pgvector
 * image, values for the official NATS chart with a three-server JetStream, and the Nexus
 * values that connect through their Services and Secrets with stream replicas = 3 — rendered
 * by helm and checked against the schemas: Kubernetes' and ours offline, CloudNativePG's
 * Cluster (the subset in k8s/testdata/crds/) offline and on the real CRD API server with strict
 * field validation, and the NATS chart values against k8s/testdata/nats-chart-values.schema.json.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Ajv } from "ajv";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { validateYaml } from "../scripts/validate-manifests.js";
import { loadConfig, SERVICE_NAMES } from "../services/kernel/config.js";
import { type CrdApiServer, describeWithCrdApiServer, startCrdApiServer } from "./support/crd-apiserver.js";

type Obj = Record<string, any>;
const DIR = "k8s/production";
const clusters = parseAllDocuments(readFileSync(join(DIR, "cloudnative-pg.yaml"), "utf8")).map((d) => d.toJS() as Obj);
const natsValues = parseYaml(readFileSync(join(DIR, "nats-values.yaml"), "utf8")) as Obj;
const nexusValues = parseYaml(readFileSync(join(DIR, "nexus-values.yaml"), "utf8")) as Obj;

function render(): Obj[] {
  const r = spawnSync(
    "bash",
    [
      "scripts/helm.sh",
      "template",
      "nexus",
      "charts/nexus",
      "--namespace",
      "nexus",
      "-f",
      join(DIR, "nexus-values.yaml"),
      "--api-versions",
      "monitoring.coreos.com/v1/ServiceMonitor",
      "--api-versions",
      "monitoring.coreos.com/v1/PrometheusRule",
    ],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj)
    .filter(Boolean);
}

describe("production path: CloudNativePG and clustered NATS", () => {
  it("the CloudNativePG Clusters pass the Cluster schema, carry pgvector and create the extension", async () => {
    const { objects, problems } = await validateYaml(readFileSync(join(DIR, "cloudnative-pg.yaml"), "utf8"));
    expect(problems).toEqual([]);
    expect(objects.map((o) => `${o.apiVersion} ${o.kind}`)).toEqual(["postgresql.cnpg.io/v1 Cluster", "postgresql.cnpg.io/v1 Cluster"]);
    const [primary, standby] = clusters as [Obj, Obj];
    for (const c of clusters) {
      expect(c.spec.instances).toBe(3);
      // CloudNativePG's "standard" operand images ship pgvector; "minimal" ones do not.
      expect(c.spec.imageName).toMatch(/^ghcr\.io\/cloudnative-pg\/postgresql:\d+(\.\d+)?-standard-/);
    }
    expect(primary.spec.bootstrap.initdb.postInitApplicationSQL).toContain("CREATE EXTENSION IF NOT EXISTS vector");
    // The standby region is a replica cluster of the primary one, bootstrapped from it.
    expect(standby.spec.replica).toEqual({ enabled: true, source: standby.spec.externalClusters[0].name });
    expect(standby.spec.bootstrap.pg_basebackup.source).toBe(standby.spec.externalClusters[0].name);
  });

  it("a misspelt Cluster field fails the check", async () => {
    const bad = readFileSync(join(DIR, "cloudnative-pg.yaml"), "utf8").replace("postInitApplicationSQL:", "postInitAppSQL:");
    const { problems } = await validateYaml(bad);
    expect(problems.join("\n")).toContain("must NOT have additional properties (postInitAppSQL)");
  });

  it("the NATS chart values describe a three-server JetStream cluster", () => {
    const schema = JSON.parse(readFileSync("k8s/testdata/nats-chart-values.schema.json", "utf8")) as object;
    const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
    expect(validate(natsValues), JSON.stringify(validate.errors)).toBe(true);
    expect(natsValues.config.cluster).toEqual({ enabled: true, replicas: 3 });
    expect(natsValues.config.jetstream.enabled).toBe(true);
    // Streams cannot have more replicas than the cluster has servers.
    expect(nexusValues.nats.streamReplicas).toBe(natsValues.config.cluster.replicas);
    expect(validate({ ...natsValues, config: { ...natsValues.config, clustr: {} } })).toBe(false);
  });

  it("the Nexus chart renders valid objects that connect through CloudNativePG's Secret and Service and the NATS cluster", async () => {
    const objs = render();
    const text = objs.map((o) => JSON.stringify(o)).join("\n");
    const { problems } = await validateYaml(objs.map((o) => JSON.stringify(o)).join("\n---\n"));
    expect(problems).toEqual([]);
    const appSecret = `${clusters[0]?.metadata.name}-app`;
    expect(nexusValues.database).toEqual({ existingSecret: appSecret, existingSecretKey: "uri" });
    const deployments = objs.filter((o) => o.kind === "Deployment" && o.metadata.labels["app.kubernetes.io/component"] !== "operator");
    // One Deployment per deployable role.
    expect(deployments).toHaveLength(SERVICE_NAMES.length);
    for (const d of deployments) {
      const env = d.spec.template.spec.containers[0].env as Obj[];
      expect(env.find((e) => e.name === "DATABASE_URL")?.valueFrom.secretKeyRef, d.metadata.name).toEqual({ name: appSecret, key: "uri" });
      expect(env.find((e) => e.name === "NATS_URL")?.valueFrom.secretKeyRef.name, d.metadata.name).toBe("nexus-nats");
    }
    // No single-node NATS in the release.
    expect(objs.filter((o) => o.kind === "StatefulSet")).toEqual([]);
    const config = objs.find((o) => o.kind === "ConfigMap" && o.metadata.name === "nexus-config");
    expect(config?.data.NEXUS_NATS_REPLICAS).toBe("3");
    // The services accept the settings as rendered, with a URL of the shape CloudNativePG's
    // "uri" key holds (postgresql://<owner>:<password>@<cluster>-rw.<namespace>:5432/<database>).
    const parsed = loadConfig({
      ...config?.data,
      DATABASE_URL: `postgresql://nexus:secret@${clusters[0]?.metadata.name}-rw.nexus:5432/nexus`,
      NATS_URL: "nats://nats.nats.svc:4222",
    });
    expect(parsed.natsReplicas).toBe(3);
    // The primary region's failover endpoint is the cluster's read-write Service.
    expect(nexusValues.failover.regions[nexusValues.failover.primaryRegion].endpoint).toBe(
      `${clusters[0]?.metadata.name}-rw.nexus.svc:5432`,
    );
    expect(text).toContain('"kind":"PrometheusRule"');
  });

  it("NEXUS_NATS_REPLICAS is refused outside 1-5", () => {
    expect(() => loadConfig({ NEXUS_NATS_REPLICAS: "0" })).toThrow(/NEXUS_NATS_REPLICAS/);
    expect(() => loadConfig({ NEXUS_NATS_REPLICAS: "7" })).toThrow(/NEXUS_NATS_REPLICAS/);
  });
});

describeWithCrdApiServer("production path: CloudNativePG Clusters on the real CRD API server", () => {
  const dir = mkdtempSync(join(tmpdir(), "nexus-cnpg-"));
  let real: CrdApiServer;
  /**
   * `kubectl create --validate=strict` (mode "create") or `kubectl apply --server-side` of one
   * object against the real server, as a user would; the exit status and the stored object or
   * kubectl's message.
   */
  const kubectl = (mode: "create" | "apply", obj: unknown): { status: number; body: Obj } => {
    const args = mode === "create" ? ["create", "--validate=strict"] : ["apply", "--server-side"];
    const r = spawnSync("bash", ["scripts/kubectl.sh", "--kubeconfig", join(dir, "kubeconfig-real"), ...args, "-f", "-", "-o", "json"], {
      input: JSON.stringify(obj),
      encoding: "utf8",
    });
    return { status: r.status ?? -1, body: r.status === 0 ? (JSON.parse(r.stdout) as Obj) : { message: r.stderr } };
  };

  beforeAll(async () => {
    real = await startCrdApiServer(join(dir, "apiserver"));
    real.writeKubeconfig(dir);
    const crd = parseYaml(readFileSync("k8s/testdata/crds/postgresql.cnpg.io_clusters.yaml", "utf8")) as Obj;
    const applied = kubectl("apply", crd);
    expect(applied.status, applied.body.message).toBe(0);
    const established = spawnSync(
      "bash",
      [
        "scripts/kubectl.sh",
        "--kubeconfig",
        join(dir, "kubeconfig-real"),
        "wait",
        "--for=condition=Established",
        "crd/clusters.postgresql.cnpg.io",
        "--timeout=30s",
      ],
      { encoding: "utf8" },
    );
    expect(established.status, established.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await real?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates both example Clusters with strict field validation", () => {
    for (const [i, c] of clusters.entries()) {
      // Same name in two regions: two namespaces here.
      const r = kubectl("create", { ...c, metadata: { ...c.metadata, namespace: `region-${i}` } });
      expect(r.status, r.body.message).toBe(0);
      expect(r.body.spec.instances).toBe(3);
    }
  });

  it("refuses a misspelt field, as a cluster with CloudNativePG installed would", () => {
    const c = clusters[0]!;
    const r = kubectl("create", {
      ...c,
      metadata: { ...c.metadata, name: "typo", namespace: "region-0" },
      spec: { ...c.spec, instance: 3 },
    });
    expect(r.status).not.toBe(0);
    expect(r.body.message).toMatch(/unknown field "spec.instance"/);
  });
});
