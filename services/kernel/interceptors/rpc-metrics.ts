import type { Interceptor } from "@connectrpc/connect";
import type { Counter, Gauge, Histogram } from "prom-client";
import { register } from "prom-client";
import { counter, gauge, histogram } from "../metrics.js";
import { codeName, rpcName, settleRpc } from "./rpc-call.js";

/** The RED metrics of RPCs (names are fixed: dashboards depend on them). */
export interface RpcMetrics {
  /** nexus_rpc_requests_total{service,method,code} */
  requests: Counter<"service" | "method" | "code">;
  /** nexus_rpc_duration_seconds{service,method,code} */
  duration: Histogram<"service" | "method" | "code">;
  /** nexus_rpc_in_flight{service} */
  inFlight: Gauge<"service">;
}

/** The RPC metrics on the default registry (created on first use, then shared). */
export function rpcMetrics(): RpcMetrics {
  return {
    requests: counter("nexus_rpc_requests_total", "RPCs handled, by service, method and Connect code.", ["service", "method", "code"]),
    duration: histogram(
      "nexus_rpc_duration_seconds",
      "RPC duration in seconds (streams: until the last message), by service, method and code.",
      ["service", "method", "code"],
    ),
    inFlight: gauge("nexus_rpc_in_flight", "RPCs being handled right now, by service.", ["service"]),
  };
}

interface LabelledRpcMetrics {
  requests: { inc(): void };
  duration: { observe(value: number): void };
}

/** The labelled children of one (service, method, code), looked up once, not per call. */
let children = new Map<string, LabelledRpcMetrics>();
let childrenOf: RpcMetrics | undefined;

function labelled(service: string, method: string, code: string): LabelledRpcMetrics {
  // One lookup by name tells whether the registry still holds the metrics the children belong
  // to (tests clear it); rpcMetrics() itself checks types and label names, too slow per call.
  if (
    childrenOf === undefined ||
    register.getSingleMetric("nexus_rpc_requests_total") !== childrenOf.requests ||
    register.getSingleMetric("nexus_rpc_duration_seconds") !== childrenOf.duration
  ) {
    children = new Map();
    childrenOf = rpcMetrics();
  }
  const m = childrenOf;
  const key = `${service}/${method}/${code}`;
  let c = children.get(key);
  if (c === undefined) {
    const labels = { service, method, code };
    c = { requests: m.requests.labels(labels), duration: m.duration.labels(labels) };
    children.set(key, c);
  }
  return c;
}

/**
 * Records one finished RPC. `code` is the Connect code name ("ok", "invalid_argument", …);
 * `service` the full service name, `method` the method name.
 */
export function recordRpc(service: string, method: string, error: unknown, seconds: number): void {
  const c = labelled(service, method, codeName(error));
  c.requests.inc();
  c.duration.observe(seconds);
}

/** The `nexus_rpc_in_flight` gauge of a service, its labelled child looked up once per service. */
export function inFlightGauges(): (service: string) => { inc(): void; dec(): void } {
  const { inFlight } = rpcMetrics();
  const children = new Map<string, { inc(): void; dec(): void }>();
  return (service) => {
    let gauge = children.get(service);
    if (gauge === undefined) {
      gauge = inFlight.labels({ service });
      children.set(service, gauge);
    }
    return gauge;
  };
}

/**
 * Server interceptor: counts every RPC and its duration by service, method and code, and
 * tracks RPCs in flight per service (streams count until their last message).
 */
export function metricsInterceptor(): Interceptor {
  const inFlightOf = inFlightGauges();
  return (next) => async (req) => {
    const { service, method } = rpcName(req);
    const startedAt = performance.now();
    const g = inFlightOf(service);
    g.inc();
    return settleRpc(
      () => next(req),
      req.signal,
      (error) => {
        g.dec();
        recordRpc(service, method, error, (performance.now() - startedAt) / 1000);
      },
    );
  };
}
