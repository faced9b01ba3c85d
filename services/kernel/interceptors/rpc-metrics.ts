import type { Interceptor } from "@connectrpc/connect";
import type { Counter, Gauge, Histogram } from "prom-client";
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

/**
 * Records one finished RPC. `code` is the Connect code name ("ok", "invalid_argument", …);
 * `service` the full service name, `method` the method name.
 */
export function recordRpc(service: string, method: string, error: unknown, seconds: number): void {
  const m = rpcMetrics();
  const labels = { service, method, code: codeName(error) };
  m.requests.inc(labels);
  m.duration.observe(labels, seconds);
}

/**
 * Server interceptor: counts every RPC and its duration by service, method and code, and
 * tracks RPCs in flight per service (streams count until their last message).
 */
export function metricsInterceptor(): Interceptor {
  const { inFlight } = rpcMetrics();
  return (next) => async (req) => {
    const { service, method } = rpcName(req);
    const startedAt = performance.now();
    inFlight.inc({ service });
    return settleRpc(
      () => next(req),
      req.signal,
      (error) => {
        inFlight.dec({ service });
        recordRpc(service, method, error, (performance.now() - startedAt) / 1000);
      },
    );
  };
}
