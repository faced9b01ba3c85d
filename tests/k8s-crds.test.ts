/**
 * The CRDs have one source (operator/crds/*.ts): the YAML in k8s/crds/ and charts/nexus/crds/
 * must be exactly what it generates (run `npm run crds:generate` after changing it), and the
 * CRDs, the samples and the offline validator behave as a user relies on.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { nexusCrds } from "../operator/crds/index.js";
import { CRD_FOLDERS, renderCrdFiles } from "../scripts/generate-crds.js";
import { validateObject, validateYaml } from "../scripts/validate-manifests.js";

type Obj = Record<string, any>;
const crdByKind = (kind: string) => nexusCrds().find((c) => c.spec.names.kind === kind)!;
const columns = (kind: string) => crdByKind(kind).spec.versions[0]!.additionalPrinterColumns.map((c) => c.name.toUpperCase());
const sample = (file: string) => readFileSync(join("k8s/samples", file), "utf8");

describe("CRDs", () => {
  it.each(CRD_FOLDERS)("%s holds exactly the generated CRDs (npm run crds:generate)", (folder) => {
    for (const { file, text } of renderCrdFiles()) {
      expect(readFileSync(join(folder, file), "utf8"), `${folder}/${file} is stale: run npm run crds:generate`).toBe(text);
    }
  });

  it("have the status subresource, short names, the nexus category and the printer columns users read", () => {
    for (const crd of nexusCrds()) {
      expect(crd.spec.versions[0]!.subresources).toEqual({ status: {} });
      expect(crd.spec.names.shortNames.length).toBeGreaterThan(0);
      expect(crd.spec.names.categories).toContain("nexus");
    }
    expect(columns("Tenant")).toEqual(expect.arrayContaining(["READY", "PLAN", "USAGE", "AGE"]));
    expect(columns("Quota")).toEqual(expect.arrayContaining(["USED", "LIMIT"]));
    expect(columns("Failover")).toEqual(expect.arrayContaining(["PHASE", "TARGET", "AGE"]));
    expect(columns("Workflow")).toEqual(expect.arrayContaining(["READY", "TENANT", "KIND", "VERSION", "AGE"]));
    expect(columns("Destination")).toEqual(expect.arrayContaining(["READY", "TENANT", "TYPE"]));
    expect(columns("SenderApp")).toEqual(expect.arrayContaining(["READY", "TENANT", "KEY SECRET"]));
  });

  it("carry CEL rules (immutable slug and target, soft-cap range, daily ≤ monthly, unique secret names)", () => {
    const rules = JSON.stringify(nexusCrds().map((c) => c.spec.versions[0]!.schema));
    for (const rule of [
      "self == oldSelf",
      "self.targetRegion == oldSelf.targetRegion",
      "self > 0.0 && self <= 1.0",
      "self.daily.runs <= self.monthly.runs",
      "exists_one",
    ]) {
      expect(rules).toContain(rule);
    }
  });

  it("are valid CustomResourceDefinition objects", async () => {
    for (const crd of nexusCrds()) expect(await validateObject(crd as unknown as Obj)).toEqual([]);
  });
});

describe("samples (k8s/samples)", () => {
  it.each(["tenant.yaml", "quota.yaml", "failover.yaml", "regions.yaml", "sender-app.yaml", "destination.yaml", "workflow.yaml"])(
    "%s is valid",
    async (file) => {
      const { objects, problems } = await validateYaml(sample(file));
      expect(objects.length).toBe(1);
      expect(problems).toEqual([]);
    },
  );

  it("the regions sample parses as the operator reads it", () => {
    const cm = parse(sample("regions.yaml")) as Obj;
    for (const v of Object.values(cm.data as Record<string, string>)) {
      expect(JSON.parse(v)).toEqual({ endpoint: expect.stringMatching(/:\d+$/), databaseUrlSecret: expect.any(String) });
    }
  });
});

describe("the offline validator refuses what the API server would refuse", () => {
  it("a Tenant with an unknown plan, a Quota with a bad hard-cap mode", async () => {
    const tenant = parse(sample("tenant.yaml")) as Obj;
    tenant.spec.plan = "platinum";
    expect((await validateObject(tenant)).join()).toMatch(/plan/);
    const quota = parse(sample("quota.yaml")) as Obj;
    quota.spec.hardCapMode = "Sometimes";
    expect((await validateObject(quota)).join()).toMatch(/hardCapMode/);
  });

  it("a Deployment with a wrongly typed field, and an unknown kind", async () => {
    const bad = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "x" },
      spec: { replicas: "three", selector: {}, template: {} },
    };
    expect((await validateObject(bad)).length).toBeGreaterThan(0);
    expect(await validateObject({ apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } })).toEqual([
      "Widget w: unknown kind example.com/v1 Widget (no schema to validate it)",
    ]);
  });
});
