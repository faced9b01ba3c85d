/**
 * A real Prometheus server for the tests (Debian package `prometheus`, which .ci/run installs),
 * scraping the targets it is given every second, and a small client for its HTTP API.
 *
 * Suites that need it use {@link describeWithPrometheus}: they skip with a line saying so when
 * the binary is missing, and fail under NEXUS_REQUIRE_SERVICES=1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe } from "vitest";
import { freePort } from "./crd-apiserver.js";

/** The prometheus binary (override with PROMETHEUS_BIN). */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN ?? ["/usr/bin/prometheus", "/usr/local/bin/prometheus"].find((p) => existsSync(p));

function gate() {
  if (PROMETHEUS_BIN) return describe;
  if (process.env.NEXUS_REQUIRE_SERVICES === "1") {
    throw new Error("prometheus is not installed and NEXUS_REQUIRE_SERVICES=1: apt-get install prometheus (.ci/run does)");
  }
  console.warn("[nexus tests] skipping suites that need Prometheus: no prometheus binary (apt-get install prometheus)");
  return describe.skip;
}

/** `describe` for suites that need a real Prometheus. */
export const describeWithPrometheus = gate();

/** One scrape job: a name, `host:port` targets and labels added to every series. */
export interface ScrapeJob {
  name: string;
  targets: string[];
  labels?: Record<string, string>;
}

/** A series or sample of an instant query. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A running Prometheus. */
export interface PrometheusServer {
  url: string;
  /** Instant query; throws with Prometheus' error message when the expression does not parse or fails. */
  query(expr: string): Promise<PromSample[]>;
  /** Values of a label over the series matching `match` (what Grafana's label_values() asks for). */
  labelValues(label: string, match: string): Promise<string[]>;
  /** The last lines Prometheus printed. */
  log(): string;
  stop(): Promise<void>;
}

/** Starts Prometheus on a free loopback port, scraping `jobs` every `intervalSeconds` (default 1). */
export async function startPrometheus(dir: string, jobs: ScrapeJob[], intervalSeconds = 1): Promise<PrometheusServer> {
  if (!PROMETHEUS_BIN) throw new Error("no prometheus binary");
  mkdirSync(dir, { recursive: true });
  const config = {
    global: { scrape_interval: `${intervalSeconds}s`, evaluation_interval: `${intervalSeconds}s` },
    scrape_configs: jobs.map((j) => ({ job_name: j.name, static_configs: [{ targets: j.targets, labels: j.labels ?? {} }] })),
  };
  const configFile = path.join(dir, "prometheus.yml");
  // JSON is YAML.
  writeFileSync(configFile, JSON.stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${out}`);
    const ready = await fetch(`${url}/-/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`prometheus not ready after 30 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const api = async (p: string, params: Record<string, string>): Promise<any> => {
    const res = await fetch(`${url}${p}`, { method: "POST", body: new URLSearchParams(params) });
    const body = (await res.json()) as { status: string; data: any; error?: string; errorType?: string };
    if (body.status !== "success") throw new Error(`${body.errorType ?? "error"}: ${body.error ?? JSON.stringify(body)}`);
    return body.data;
  };
  return {
    url,
    async query(expr: string) {
      const data = await api("/api/v1/query", { query: expr });
      if (data.resultType === "scalar") return [{ metric: {}, value: data.result }];
      return data.result as PromSample[];
    },
    async labelValues(label: string, match: string) {
      const res = await fetch(`${url}/api/v1/label/${encodeURIComponent(label)}/values?${new URLSearchParams({ "match[]": match })}`);
      const body = (await res.json()) as { status: string; data: string[]; error?: string };
      if (body.status !== "success") throw new Error(body.error ?? "label values failed");
      return body.data;
    },
    log: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
