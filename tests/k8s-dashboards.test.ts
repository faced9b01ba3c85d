/**
 * The Grafana dashboards in charts/nexus/dashboards/ query only metrics Nexus really exports:
 * runs the mesh (`nexus dev`), exercises it over the API, scrapes /metrics, adds the
 * operator's own metrics, and fails on any metric a dashboard queries that is neither exported
 * nor listed in PENDING (metrics later issues will export). PENDING shrinks as they land: a
 * pending metric that is exported fails the test until it is removed from the list. Each
 * dashboard also type-checks against Grafana's published model (@grafana/schema).
 * tests/k8s-prometheus-dashboards.test.ts evaluates every panel in a real Prometheus.
 */
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { register } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OPERATOR_METRIC_NAMES, operatorMetrics } from "../operator/controller/metrics.js";
import { createNexusClient } from "../services/client/index.js";
import { type NexusProcess, startNexus } from "./support/nexus-process.js";

/** Metrics the dashboards use that a later issue will export: name → who exports it. */
const PENDING: Record<string, string> = {};

const DASHBOARD_DIR = "charts/nexus/dashboards";
const dashboards = readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith(".json"));

type Obj = Record<string, any>;

/** Every PromQL expression of a dashboard: panel targets (rows' nested panels too) and query variables. */
function expressions(dashboard: Obj): string[] {
  const out: string[] = [];
  const walk = (panels: Obj[] | undefined) => {
    for (const p of panels ?? []) {
      for (const t of p.targets ?? []) if (typeof t.expr === "string") out.push(t.expr);
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (v.type === "query" && typeof q === "string") out.push(q);
  }
  return out;
}

/** Metric names in an expression, histogram series (_bucket/_sum/_count) folded to their base name. */
function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\b(nexus_[a-z0-9_]+)\b/g)].map((m) => (m[1] ?? "").replace(/_(bucket|sum|count)$/, "")))];
}

const dir = mkdtempSync(join(tmpdir(), "nexus-dash-"));
let nexus: NexusProcess;
const exported = new Set<string>();

beforeAll(async () => {
  const keyId = randomBytes(12).toString("hex");
  const key = `nxs_${keyId}_${randomBytes(32).toString("base64url")}`;
  nexus = await startNexus({
    args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", join(dir, "data")],
    env: { NEXUS_BOOTSTRAP_KEY_ID: keyId, NEXUS_BOOTSTRAP_KEY_SHA256: createHash("sha256").update(key).digest("hex") },
  });
  // Exercise the mesh as a client would: successes and failures on several services.
  const client = createNexusClient({ baseUrl: nexus.url, apiKey: key });
  const calls: Promise<unknown>[] = [
    client.auth.whoAmI({}),
    client.auth.getTenant({ selector: { case: "slug", value: "no-such-tenant" } }),
    client.metering.getQuota({ tenantId: "no-such-tenant" }),
    client.retrieval.listCorpora({}),
    client.ingestion.listDocuments({}),
    createNexusClient({ baseUrl: nexus.url, apiKey: "nxs_wrong_key" }).auth.whoAmI({}),
  ];
  await Promise.allSettled(calls);
  const text = await (await fetch(`${nexus.url}/metrics`)).text();
  for (const m of text.matchAll(/^# TYPE (\S+) /gm)) exported.add(m[1] ?? "");
  // The operator's metrics, from the same registry its /metrics endpoint serves.
  operatorMetrics();
  for (const m of (await register.metrics()).matchAll(/^# TYPE (nexus_operator_\S+) /gm)) exported.add(m[1] ?? "");
}, 90_000);

afterAll(async () => {
  await nexus?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("Grafana dashboards", () => {
  it("exist: overview, tenants & metering, event bus, ingestion, operator", () => {
    const uids = dashboards.map((f) => (JSON.parse(readFileSync(join(DASHBOARD_DIR, f), "utf8")) as Obj).uid).sort();
    expect(uids).toEqual(["nexus-event-bus", "nexus-ingestion", "nexus-operator", "nexus-overview", "nexus-tenants"]);
  });

  it("the operator exports every metric it declares", () => {
    for (const name of OPERATOR_METRIC_NAMES) expect(exported, name).toContain(name);
  });

  it.each(dashboards)("%s is importable (DS_PROMETHEUS input, stable uid, namespace variable)", (file) => {
    const d = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), "utf8")) as Obj;
    expect(d.__inputs).toEqual([expect.objectContaining({ name: "DS_PROMETHEUS", pluginId: "prometheus" })]);
    expect(d.uid).toMatch(/^nexus-[a-z-]+$/);
    expect(d.templating.list.map((v: Obj) => v.name)).toContain("namespace");
    expect(expressions(d).length).toBeGreaterThan(3);
  });

  it.each(dashboards)("%s queries only exported metrics (or ones PENDING names)", (file) => {
    const d = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), "utf8")) as Obj;
    const unknown: string[] = [];
    for (const expr of expressions(d)) {
      for (const name of metricNames(expr)) {
        if (!exported.has(name) && PENDING[name] === undefined) unknown.push(`${name} (in: ${expr})`);
      }
    }
    expect(unknown, `metrics queried by ${file} that nothing exports`).toEqual([]);
  });

  it("match Grafana's published dashboard schema (@grafana/schema's Dashboard type)", () => {
    // @grafana/schema publishes the dashboard model as TypeScript types, not JSON Schema: each
    // dashboard is checked as an object literal that `satisfies Dashboard`, so a wrong type, a
    // missing required field and an unknown field (excess property) are all errors. __inputs
    // and __requires belong to the import format, not the model.
    // Inside the repository (gitignored), so "@grafana/schema" resolves from node_modules.
    mkdirSync(".ci-tools", { recursive: true });
    const checkDir = mkdtempSync(join(".ci-tools", "dashboard-schema-"));
    try {
      const lines = ['import type { Dashboard } from "@grafana/schema/dist/esm/raw/dashboard/x/Dashboard_types.gen";'];
      for (const file of dashboards) {
        const { __inputs: _i, __requires: _r, ...model } = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), "utf8")) as Obj;
        lines.push(`// ${file}`, `export const d${lines.length} = ${JSON.stringify(model, null, 1)} satisfies Dashboard;`);
      }
      writeFileSync(join(checkDir, "dashboards.ts"), `${lines.join("\n")}\n`);
      writeFileSync(
        join(checkDir, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            module: "nodenext",
            moduleResolution: "nodenext",
            target: "es2022",
            skipLibCheck: true,
          },
          files: ["dashboards.ts"],
        }),
      );
      const r = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", join(checkDir, "tsconfig.json")], {
        encoding: "utf8",
      });
      expect(r.stdout + r.stderr).toBe("");
      expect(r.status).toBe(0);
    } finally {
      rmSync(checkDir, { recursive: true, force: true });
    }
  });

  it("PENDING lists only metrics that are still not exported", () => {
    const landed = Object.keys(PENDING).filter((name) => exported.has(name));
    expect(landed, "these are exported now: remove them from PENDING in tests/k8s-dashboards.test.ts").toEqual([]);
  });
});
