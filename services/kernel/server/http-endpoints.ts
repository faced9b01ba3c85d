import type { Logger } from "pino";
import { register } from "prom-client";
import type { NodeRequest as Req, NodeResponse as Res } from "./node-http.js";
import { plain } from "./node-http.js";
import type { HttpRoute, ServiceModule } from "./service-module.js";
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

/**
 * The services' own plain HTTP endpoints ({@link HttpRoute}): exact paths and prefixes, checked
 * for clashes when the server is built. Returns `handle(req, res)`: true when a route answered.
 */
export function createServiceRoutes(modules: readonly ServiceModule[], logger: Logger): (req: Req, res: Res) => boolean {
  const routes = modules.flatMap((m) => (m.httpRoutes ?? []).map((r) => ({ ...r, owner: m.name })));
  for (const [i, a] of routes.entries()) {
    for (const b of routes.slice(i + 1)) {
      const clash = a.path === b.path || (a.prefix && b.path.startsWith(`${a.path}/`)) || (b.prefix && a.path.startsWith(`${b.path}/`));
      if (clash) throw new Error(`HTTP route ${b.path} of "${b.owner}" clashes with ${a.path} of "${a.owner}"`);
    }
  }
  if (routes.length === 0) return () => false;
  return (req, res) => {
    const path = (req.url ?? "").split("?", 1)[0] ?? "";
    const route = routes.find((r) => path === r.path || (r.prefix === true && path.startsWith(`${r.path}/`)));
    if (route === undefined) return false;
    if (route.methods && !route.methods.includes(req.method ?? "")) {
      plain(res).writeHead(405, { allow: route.methods.join(", ") });
      plain(res).end();
      return true;
    }
    const fail = (err: unknown) => {
      logger.error({ err, path, route: route.path }, "HTTP route failed");
      if (!plain(res).headersSent) json(req, res, 500, { error: "internal error" });
      else plain(res).end();
    };
    try {
      const out = route.handle(req, res);
      if (out instanceof Promise) out.catch(fail);
    } catch (err) {
      fail(err);
    }
    return true;
  };
}
