import type { Database } from "../db/ports.js";
import { consumerLagSeconds } from "../events/consumer-lag.js";
import { gauge } from "../metrics.js";
import { plain } from "../server/node-http.js";
import type { HttpRoute } from "../server/service-module.js";
import type { Projection } from "./projection.js";
import { type ProjectionStatus, projectionStatus } from "./rebuild.js";

/**
 * Projection health on the running server (R5.4, R4.5, R11): every `intervalMs` (default 1 s;
 * the server passes NEXUS_PROJECTION_MONITOR_INTERVAL_MS, default 5 s)
 * each projection's status is measured (lag query budget 100 ms) and exposed as metrics and as
 * JSON on `GET /projections/health`, answered from the last measurement (so within 100 ms
 * whatever the database does).
 */

const lagSeconds = gauge(
  "nexus_projection_lag_seconds",
  "Age in seconds of the oldest event a projection does not reflect (0 = up to date)",
  ["projection"],
);
const behindRows = gauge("nexus_projection_rows_behind", "Rows of a projection behind their stream", ["projection"]);
const healthy = gauge("nexus_projection_healthy", "1 when the projection is ok and its lag was measured, else 0", ["projection"]);

export const PROJECTION_HEALTH_PATH = "/projections/health";

/** A read model written by a durable consumer: its lag is that consumer's (consumer-lag.ts). */
export interface ConsumerFedReadModel {
  projection: string;
  table: string;
  consumer: string;
}

/** A consumer-fed read model's lag as reported on /projections/health. */
export interface ConsumerFedStatus extends ConsumerFedReadModel {
  /** Age in seconds of the oldest event its consumer has not handled; absent until measured. */
  lagSeconds?: number;
}

/** A running monitor. */
export interface ProjectionMonitor {
  /** The last measurement per projection (empty until the first one). */
  last(): Record<string, ProjectionStatus & { measuredAt: Date }>;
  /** One measurement round now (the timer calls it every interval). */
  measure(): Promise<void>;
  /** `GET /projections/health`: 200 when every projection is ok, 503 otherwise. */
  route: HttpRoute;
  close(): void;
}

export function startProjectionMonitor(
  db: Database,
  projections: readonly Projection[],
  options: {
    intervalMs?: number;
    /** Consumer-fed read models whose consumer runs in this process: their lag is listed under `consumers`. */
    consumerFed?: readonly ConsumerFedReadModel[];
  } = {},
): ProjectionMonitor {
  const last: Record<string, ProjectionStatus & { measuredAt: Date }> = {};
  let busy = false;
  const measure = async () => {
    for (const p of projections) {
      try {
        const s = await projectionStatus(db, p, 100);
        last[p.name] = { ...s, measuredAt: new Date() };
        behindRows.set({ projection: p.name }, s.behind);
        if (s.lagSeconds !== undefined) lagSeconds.set({ projection: p.name }, s.lagSeconds);
        healthy.set({ projection: p.name }, s.state === "ok" && s.lagSeconds !== undefined ? 1 : 0);
      } catch {
        healthy.set({ projection: p.name }, 0);
      }
    }
  };
  const tick = () => {
    if (busy) return; // a slow round is not overlapped by the next one
    busy = true;
    void measure().finally(() => {
      busy = false;
    });
  };
  const timer = setInterval(tick, options.intervalMs ?? 1000);
  timer.unref();
  tick();
  return {
    last: () => ({ ...last }),
    measure,
    route: {
      path: PROJECTION_HEALTH_PATH,
      methods: ["GET"],
      handle(_req, res) {
        const statuses = projections.map((p) => last[p.name] ?? { projection: p.name, state: "unknown" as const });
        const ok = statuses.every((s) => s.state === "ok" && "lagSeconds" in s && s.lagSeconds !== undefined);
        const consumers: ConsumerFedStatus[] = (options.consumerFed ?? []).map((c) => {
          const lag = consumerLagSeconds(c.consumer);
          return lag === undefined ? { ...c } : { ...c, lagSeconds: lag };
        });
        const body = JSON.stringify({ projections: statuses, consumers }, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
        plain(res).writeHead(ok ? 200 : 503, { "content-type": "application/json" });
        plain(res).end(body);
      },
    },
    close() {
      clearInterval(timer);
    },
  };
}
