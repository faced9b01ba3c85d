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

/**
 * Observations waiting for the registry, per series: at most this many, then they are handed
 * over together (and always before a scrape reads the metrics).
 */
const PENDING_MAX = 256;

/**
 * One series (service, method, code) of the request counter and the duration histogram.
 *
 * prom-client's labelled children check and hash their labels on every `inc`/`observe`: cheap
 * alone, but about 5 % of an authenticated unary call's CPU in the server (docs/performance.md),
 * where that code is cold by the time a call ends. Here a call stores its duration in an array;
 * the durations go into prom-client's counter and histogram together, by their public API, when
 * PENDING_MAX have gathered or when the registry is read (their `collect`, which prom-client runs
 * before every scrape and `get()`). What a scrape shows is therefore exact, as before.
 */
class RpcSeries {
  private readonly pending = new Float64Array(PENDING_MAX);
  private count = 0;

  constructor(
    private readonly requests: { inc(value: number): void },
    private readonly duration: { observe(value: number): void },
  ) {}

  record(seconds: number): void {
    this.pending[this.count++] = seconds;
    if (this.count === PENDING_MAX) this.flush();
  }

  flush(): void {
    const n = this.count;
    if (n === 0) return;
    this.count = 0;
    this.requests.inc(n);
    for (let i = 0; i < n; i++) this.duration.observe(this.pending[i]!);
  }
}

/** The series of the current metrics by service, method and code (nested: no key string built per call). */
let series = new Map<string, Map<string, Map<string, RpcSeries>>>();
let seriesOf: RpcMetrics | undefined;

function flushAll(): void {
  for (const byMethod of series.values()) for (const byCode of byMethod.values()) for (const s of byCode.values()) s.flush();
}

/** `collect` of a prom-client metric: run before each read of it. */
type Collectable = { collect?: () => void };

function currentSeries(service: string, method: string, code: string): RpcSeries {
  // One lookup by name tells whether the registry still holds the metrics the series feed
  // (tests clear it); rpcMetrics() itself checks types and label names, too slow per call.
  if (
    seriesOf === undefined ||
    register.getSingleMetric("nexus_rpc_requests_total") !== seriesOf.requests ||
    register.getSingleMetric("nexus_rpc_duration_seconds") !== seriesOf.duration
  ) {
    series = new Map();
    seriesOf = rpcMetrics();
    (seriesOf.requests as Collectable).collect = flushAll;
    (seriesOf.duration as Collectable).collect = flushAll;
  }
  let byMethod = series.get(service);
  if (byMethod === undefined) series.set(service, (byMethod = new Map()));
  let byCode = byMethod.get(method);
  if (byCode === undefined) byMethod.set(method, (byCode = new Map()));
  let s = byCode.get(code);
  if (s === undefined) {
    const labels = { service, method, code };
    s = new RpcSeries(seriesOf.requests.labels(labels), seriesOf.duration.labels(labels));
    byCode.set(code, s);
  }
  return s;
}

/**
 * Records one finished RPC. `code` is the Connect code name ("ok", "invalid_argument", …);
 * `service` the full service name, `method` the method name.
 */
export function recordRpc(service: string, method: string, error: unknown, seconds: number): void {
  currentSeries(service, method, codeName(error)).record(seconds);
}

/** One service's RPCs in flight. */
class InFlight {
  n = 0;
  inc(): void {
    this.n++;
  }
  dec(): void {
    this.n--;
  }
}

/** RPCs in flight by service, read into `nexus_rpc_in_flight` when the registry is read. */
const inFlight = new Map<string, InFlight>();
let inFlightGauge: RpcMetrics["inFlight"] | undefined;

/**
 * The `nexus_rpc_in_flight` count of a service: a plain number per service, set on the gauge
 * by its `collect` before each read (a labelled prom-client child checks and hashes its labels
 * on every inc and dec).
 */
export function inFlightGauges(): (service: string) => { inc(): void; dec(): void } {
  const gauge = rpcMetrics().inFlight;
  if (gauge !== inFlightGauge) {
    inFlightGauge = gauge;
    (gauge as Collectable).collect = () => {
      for (const [service, count] of inFlight) gauge.set({ service }, count.n);
    };
  }
  return (service) => {
    let count = inFlight.get(service);
    if (count === undefined) inFlight.set(service, (count = new InFlight()));
    return count;
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
