import http from "node:http";
import type { AddressInfo } from "node:net";
import { register } from "prom-client";

/** What the health endpoints report. */
export interface HealthState {
  /** False once shutdown began. */
  live(): boolean;
  /** Ready: a standby is ready; the leader once its informers synced. Returns a reason when not. */
  ready(): { ready: true } | { ready: false; reason: string };
}

/** A listening health/metrics server. */
export interface HealthServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves GET /healthz (liveness), /readyz (readiness) and /metrics (prom-client default
 * registry: the operator's reconcile metrics) on its own port (default 8081 in the chart).
 */
export async function startHealthServer(state: HealthState, port: number, host = "0.0.0.0"): Promise<HealthServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (path === "/healthz") return json(state.live() ? 200 : 503, { status: state.live() ? "ok" : "shutting_down" });
    if (path === "/readyz") {
      const r = state.ready();
      return json(r.ready ? 200 : 503, r.ready ? { status: "ready" } : { status: "not_ready", reason: r.reason });
    }
    if (path === "/metrics") {
      void register.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": register.contentType });
          res.end(text);
        },
        () => json(500, { status: "error" }),
      );
      return;
    }
    json(404, { status: "not_found" });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
