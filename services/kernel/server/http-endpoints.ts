import type { Logger } from "pino";
import { register } from "prom-client";
import type { NodeRequest as Req, NodeResponse as Res } from "./node-http.js";
import { plain } from "./node-http.js";
import type { ServingState } from "./serving-state.js";

/** Paths of the plain HTTP endpoints served next to the RPCs. */
export const HTTP_PATHS = { metrics: "/metrics", liveness: "/healthz", readiness: "/readyz" } as const;

function send(req: Req, res: Res, status: number, contentType: string, body: string): void {
  plain(res).writeHead(status, { "content-type": contentType, "cache-control": "no-store" });
  plain(res).end(req.method === "HEAD" ? undefined : body);
}

function json(req: Req, res: Res, status: number, body: unknown): void {
  send(req, res, status, "application/json", `${JSON.stringify(body)}\n`);
}

/**
 * The plain HTTP endpoints (GET or HEAD): /metrics (prom-client default registry, Prometheus
 * text format), /healthz (liveness: the process serves requests, also while draining) and
 * /readyz (readiness: 200 when serving and every readiness check passes; 503 otherwise, with
 * a JSON body naming the failing checks). Returns `handle(req, res)`: true when it answered.
 */
export function createHttpEndpoints(state: ServingState, logger: Logger): (req: Req, res: Res) => boolean {
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0];
    if (path !== HTTP_PATHS.metrics && path !== HTTP_PATHS.liveness && path !== HTTP_PATHS.readiness) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res).writeHead(405, { allow: "GET, HEAD" });
      plain(res).end();
      return true;
    }
    switch (path) {
      case HTTP_PATHS.liveness:
        json(req, res, 200, { status: "ok", lifecycle: state.lifecycle });
        break;
      case HTTP_PATHS.readiness:
        void state.evaluate().then(
          (snapshot) => {
            const failing = snapshot.checks.filter((c) => !c.ready).map((c) => ({ name: c.name, reason: c.reason ?? "not ready" }));
            json(req, res, snapshot.ready ? 200 : 503, {
              status: snapshot.ready ? "ready" : "not_ready",
              lifecycle: snapshot.lifecycle,
              draining: snapshot.lifecycle === "draining",
              checks: snapshot.checks.map((c) => ({
                name: c.name,
                ready: c.ready,
                ...(c.reason ? { reason: c.reason } : {}),
                ...(c.info ? { info: c.info } : {}),
              })),
              failing,
            });
          },
          (err: unknown) => {
            logger.error({ err }, "readiness evaluation failed");
            json(req, res, 503, { status: "not_ready", failing: [{ name: "evaluation", reason: "internal error" }] });
          },
        );
        break;
      case HTTP_PATHS.metrics:
        void register.metrics().then(
          (text) => send(req, res, 200, register.contentType, text),
          (err: unknown) => {
            logger.error({ err }, "collecting metrics failed");
            send(req, res, 500, "text/plain", "collecting metrics failed\n");
          },
        );
        break;
    }
    return true;
  };
}
