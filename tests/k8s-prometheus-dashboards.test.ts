/**
 * Every panel of every Grafana dashboard (charts/nexus/dashboards/*.json), evaluated by a REAL
 * Prometheus (tests/support/prometheus.ts) that scrapes a real `nexus dev` mesh on PostgreSQL
 * and NATS JetStream, and the operator (in this process, against the real CRD API server and
 * the stand-in for core kinds), every second.
 *
 * After a small workload — an ingest that succeeds and one that fails, agent runs, a call
 * refused for a bad key, a run refused at the tenant's hard cap, a Tenant and a Quota
 * reconciled by the operator through a conflict and a failed write, a Failover — each panel expression must parse, and each panel must return
 * series carrying the labels its legend uses, unless NO_DATA_AFTER_WORKLOAD says why it stays
 * empty. The template variables' label_values() queries must return values too.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import pino from "pino";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { HardCapMode } from "../gen/nexus/metering/v1/quota_pb.js";
import { loadOperatorConfig } from "../operator/config.js";
import { type RunningOperator, runOperator } from "../operator/run-operator.js";
import { createNexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import { connectNats } from "../services/kernel/events/nats-streams.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { crdApiServerAvailable, describeWithCrdApiServer } from "./support/crd-apiserver.js";
import { eventually } from "./support/eventually.js";
import { KubeCluster } from "./support/kube-cluster.js";
import { describeWithPrometheus, type PrometheusServer, startPrometheus } from "./support/prometheus.js";
import { uploadMessages } from "./support/rag/calls.js";
import { corruptPdf } from "./support/rag/documents.js";
import { describeWithPostgresAndNats, TEST_NATS_URL, uniqueToken } from "./support/services.js";

type Obj = Record<string, any>;
const DASHBOARD_DIR = "charts/nexus/dashboards";
/** The namespace label the scrape jobs add, as the Prometheus Operator's ServiceMonitor does. */
const NAMESPACE = "nexus";

/**
 * Panels that return nothing after this workload, by "<dashboard file> / <panel title>", with
 * the reason. Anything not listed here must show data.
 */
const NO_DATA_AFTER_WORKLOAD: Record<string, string> = {
  "event-bus.json / Redeliveries per second": "no delivery failed, so nothing was redelivered",
  "event-bus.json / Dead-lettered per hour": "nothing was dead-lettered (the counter has no series until a first message is)",
};

interface Panel {
  file: string;
  title: string;
  expr: string;
  legend: string;
}

function panels(): Panel[] {
  const out: Panel[] = [];
  for (const file of readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith(".json"))) {
    const d = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), "utf8")) as Obj;
    const walk = (ps: Obj[] | undefined) => {
      for (const p of ps ?? []) {
        for (const t of p.targets ?? [])
          if (typeof t.expr === "string") out.push({ file, title: String(p.title), expr: t.expr, legend: String(t.legendFormat ?? "") });
        walk(p.panels);
      }
    };
    walk(d.panels);
  }
  return out;
}

function variableQueries(): { file: string; name: string; query: string }[] {
  const out: { file: string; name: string; query: string }[] = [];
  for (const file of readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith(".json"))) {
    const d = JSON.parse(readFileSync(join(DASHBOARD_DIR, file), "utf8")) as Obj;
    for (const v of d.templating?.list ?? []) {
      const q = typeof v.query === "string" ? v.query : v.query?.query;
      if (v.type === "query" && typeof q === "string") out.push({ file, name: v.name, query: q });
    }
  }
  return out;
}

/**
 * The expression as Grafana sends it: the namespace variable set to the scraped namespace, every
 * other variable at "All" (`.*`, the dashboards' allValue), $__rate_interval a minute (the whole
 * test fits in it).
 */
function interpolate(expr: string): string {
  return expr
    .replace(/\$__rate_interval/g, "1m")
    .replace(/\$__interval/g, "15s")
    .replace(/\$__range/g, "1h")
    .replace(/\$namespace\b/g, NAMESPACE)
    .replace(/\$\{?[a-z_]+\}?/g, ".*");
}

const dir = mkdtempSync(join(tmpdir(), "nexus-prom-"));
const token = uniqueToken("P").toUpperCase();
let mesh: AgentMesh | undefined;
let kube: KubeCluster | undefined;
let operator: RunningOperator | undefined;
let prometheus: PrometheusServer | undefined;

// PostgreSQL, NATS, the real CRD API server and Prometheus: skipped (or failed under
// NEXUS_REQUIRE_SERVICES=1) without any of them.
const describeHere = crdApiServerAvailable ? describeWithPostgresAndNats : describeWithCrdApiServer;

describeHere("dashboards against a real Prometheus", () => {
  describeWithPrometheus("every panel of every dashboard", () => {
    beforeAll(async () => {
      mesh = await startAgentMesh({
        NATS_URL: TEST_NATS_URL,
        NEXUS_SUBJECT_PREFIX: uniqueToken("p"),
        NEXUS_NATS_STREAM: `EVENTS_${token}`,
        NEXUS_DLQ_STREAM: `DLQ_${token}`,
        NEXUS_AGENT_QUOTA_FAIL_OPEN: "false",
      });
      // The operator, against the real CRD API server (core kinds on the stand-in), acting on the same mesh.
      kube = await KubeCluster.start(dir);
      const config = loadOperatorConfig(
        {
          NEXUS_OPERATOR_PLATFORM_KEY: mesh.platformKey,
          NEXUS_AUTH_URL: mesh.url,
          NEXUS_METERING_URL: mesh.url,
          NEXUS_OPERATOR_NAMESPACE: "nexus-system",
          NEXUS_OPERATOR_IDENTITY: "operator-prom-0",
        },
        { kubeconfig: kube.writeKubeconfig(dir), port: 0 },
      );
      operator = await runOperator(config, pino({ level: "silent" }));
      await eventually("the operator to lead", () => operator?.isLeader());

      prometheus = await startPrometheus(join(dir, "prometheus"), [
        { name: "nexus", targets: [mesh.address], labels: { namespace: NAMESPACE, pod: "nexus-0" } },
        { name: "nexus-operator", targets: [`127.0.0.1:${operator.port}`], labels: { namespace: NAMESPACE, pod: "operator-0" } },
      ]);

      // The workload.
      const { tenantId, key } = await mesh.newTenant("pro");
      const tenant = mesh.client(key);
      await ingestCorpus(tenant, "kb", [{ id: "keys", text: "To rotate an API key, run nexus keys rotate with the key id." }]);
      await tenant.ingestion.uploadDocument(uploadMessages({ corpusId: "kb", filename: "broken.pdf", documentId: "broken" }, corruptPdf()));
      await eventually(
        "the corrupt PDF to fail",
        async () => (await tenant.ingestion.getDocument({ documentId: "broken" })).document?.status === DocumentStatus.FAILED,
      );
      await mesh
        .client(mesh.platformKey)
        .metering.setQuota({ tenantId, dailyRunsLimit: 1n, softCapRatio: 0.8, hardCapMode: HardCapMode.ENFORCE });
      for await (const _ of tenant.agent.run({ corpusId: "kb", message: "How do I rotate an API key?" })) void _;
      const refused = await (async () => {
        try {
          for await (const _ of tenant.agent.run({ corpusId: "kb", message: "And again?" })) void _;
          return undefined;
        } catch (err) {
          return err;
        }
      })();
      expect(errorReason(refused)).toBe("QUOTA_EXCEEDED");
      await createNexusClient({ baseUrl: mesh.url, apiKey: "nxs_wrong_key" })
        .auth.whoAmI({})
        .catch(() => undefined);
      // The Tenant's first status write loses a race (409), the next one fails (500): a
      // conflict and a reconcile error for the operator dashboard, then it succeeds.
      kube.failNextWrites({ plural: "tenants", subresource: "status" }, 1, 409);
      kube.failNextWrites({ plural: "tenants", subresource: "status" }, 1, 500);
      await kube.apply({
        apiVersion: "nexus.dev/v1alpha1",
        kind: "Tenant",
        metadata: { name: "acme", namespace: "team-a" },
        spec: { slug: `acme-${token.toLowerCase()}`, displayName: "Acme", plan: "pro", suspended: false },
      });
      await kube.apply({
        apiVersion: "nexus.dev/v1alpha1",
        kind: "Quota",
        metadata: { name: "acme", namespace: "team-a" },
        spec: { tenantRef: { name: "acme" }, monthly: { runs: 100 }, softCapRatio: 0.8, hardCapMode: "Enforce" },
      });
      // A Failover (to a region the catalog does not have): its phase shows on the operator dashboard.
      await kube.apply({
        apiVersion: "nexus.dev/v1alpha1",
        kind: "Failover",
        metadata: { name: "drill", namespace: "nexus-system" },
        spec: { targetRegion: "mars", reason: "drill" },
      });
      await eventually(
        "the Failover to enter a phase",
        async () => (await kube?.get("failovers", "nexus-system", "drill"))?.status?.phaseStartedAt,
        30_000,
      );
      await eventually(
        "the Quota to be Ready",
        async () =>
          (await kube?.get("quotas", "team-a", "acme"))?.status?.conditions?.some((c: Obj) => c.type === "Ready" && c.status === "True"),
        30_000,
      );

      // Prometheus has the workload once the run refused at the cap shows in a scrape, and the
      // metering consumer (on NATS) has counted the completed run.
      await eventually(
        "Prometheus to scrape the workload",
        async () => {
          const refusedRuns = await prometheus!.query('sum(nexus_agent_runs_refused_total{reason="QUOTA_EXCEEDED"})');
          const metered = await prometheus!.query("sum(nexus_runs_total)");
          const reconciles = await prometheus!.query('sum(nexus_operator_reconcile_total{kind="Quota"})');
          const failovers = await prometheus!.query("nexus_operator_failover_phase_started_timestamp_seconds");
          return (
            Number(refusedRuns[0]?.value[1] ?? 0) >= 1 &&
            Number(metered[0]?.value[1] ?? 0) >= 1 &&
            reconciles.length > 0 &&
            failovers.length > 0
          );
        },
        30_000,
        250,
      );
      // Two more scrapes, so every rate() has two samples after the last change.
      await new Promise((r) => setTimeout(r, 2500));
    }, 180_000);

    afterAll(async () => {
      await prometheus?.stop();
      await operator?.stop();
      await kube?.close();
      await mesh?.close();
      const nc = await connectNats({ servers: TEST_NATS_URL });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.delete(`EVENTS_${token}`).catch(() => undefined);
      await jsm.streams.delete(`DLQ_${token}`).catch(() => undefined);
      await nc.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("each panel's expression parses and shows data with the labels its legend uses", async () => {
      const problems: string[] = [];
      const empty: string[] = [];
      for (const p of panels()) {
        const id = `${p.file} / ${p.title}`;
        let result: Awaited<ReturnType<PrometheusServer["query"]>>;
        try {
          result = await prometheus!.query(interpolate(p.expr));
        } catch (err) {
          problems.push(`${id}: ${(err as Error).message} (in: ${p.expr})`);
          continue;
        }
        if (result.length === 0) {
          empty.push(id);
          continue;
        }
        const labels = [...p.legend.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1] ?? "");
        for (const s of result) {
          const missing = labels.filter((l) => !s.metric[l]);
          if (missing.length > 0)
            problems.push(`${id}: a series lacks ${missing.join(", ")} for legend "${p.legend}": ${JSON.stringify(s.metric)}`);
        }
      }
      expect(problems).toEqual([]);
      expect(empty.sort(), "panels without data (list them in NO_DATA_AFTER_WORKLOAD with the reason, or extend the workload)").toEqual(
        Object.keys(NO_DATA_AFTER_WORKLOAD).sort(),
      );
    });

    it("each template variable's label_values() query finds values", async () => {
      const problems: string[] = [];
      for (const v of variableQueries()) {
        const m = /^label_values\((.+),\s*([a-zA-Z_]+)\)$/.exec(v.query.trim());
        if (!m) {
          problems.push(`${v.file} $${v.name}: not a label_values(metric, label) query: ${v.query}`);
          continue;
        }
        const values = await prometheus!.labelValues(m[2] ?? "", interpolate(m[1] ?? ""));
        if (values.length === 0) problems.push(`${v.file} $${v.name}: ${v.query} finds no values`);
      }
      expect(problems).toEqual([]);
    });
  });
});
