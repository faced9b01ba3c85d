import { Code, ConnectError } from "@connectrpc/connect";
import { Counter, Histogram, Registry, register } from "prom-client";
import { beforeEach, describe, expect, it } from "vitest";
import { DURATION_BUCKETS_SECONDS } from "../metrics.js";
import { inFlightGauges, recordRpc } from "./rpc-metrics.js";

/** The lines of one metric in the exposition text, without HELP and TYPE, sorted (series order is free). */
async function lines(registry: Registry, name: string): Promise<string[]> {
  return (await registry.getSingleMetricAsString(name))
    .split("\n")
    .filter((l) => !l.startsWith("#"))
    .sort();
}

describe("RPC metrics", () => {
  beforeEach(() => register.clear());

  it("show every call in a scrape exactly as prom-client counts them, whether 1 or past a batch", async () => {
    // The same calls counted straight into prom-client, on a registry of their own.
    const reference = new Registry();
    const requests = new Counter({
      name: "nexus_rpc_requests_total",
      help: "x",
      labelNames: ["service", "method", "code"],
      registers: [reference],
    });
    const duration = new Histogram({
      name: "nexus_rpc_duration_seconds",
      help: "x",
      labelNames: ["service", "method", "code"],
      buckets: [...DURATION_BUCKETS_SECONDS],
      registers: [reference],
    });
    const call = (method: string, error: unknown, seconds: number) => {
      recordRpc("nexus.test.v1.TestService", method, error, seconds);
      const labels = { service: "nexus.test.v1.TestService", method, code: error === undefined ? "ok" : "not_found" };
      requests.inc(labels);
      duration.observe(labels, seconds);
    };
    const missing = new ConnectError("no such thing", Code.NotFound);
    // One call: visible at the first scrape.
    call("Get", undefined, 0.003);
    expect(await lines(register, "nexus_rpc_requests_total")).toEqual(await lines(reference, "nexus_rpc_requests_total"));
    expect(await lines(register, "nexus_rpc_duration_seconds")).toEqual(await lines(reference, "nexus_rpc_duration_seconds"));
    // Past a batch (256), across methods and codes, with durations in every bucket.
    for (let i = 0; i < 700; i++)
      call(i % 3 === 0 ? "List" : "Get", i % 7 === 0 ? missing : undefined, (i % 90) * 0.0011 + (i % 11 === 0 ? 40 : 0));
    const got = await lines(register, "nexus_rpc_duration_seconds");
    expect(got).toEqual(await lines(reference, "nexus_rpc_duration_seconds"));
    expect(got).toContain('nexus_rpc_duration_seconds_count{service="nexus.test.v1.TestService",method="Get",code="ok"} 401');
    expect(await lines(register, "nexus_rpc_requests_total")).toEqual(await lines(reference, "nexus_rpc_requests_total"));
    // get() (the JSON view) shows them too.
    const json = await register.getSingleMetric("nexus_rpc_requests_total")!.get();
    expect(json.values.reduce((n, v) => n + v.value, 0)).toBe(701);
  });

  it("count calls in flight by service", async () => {
    const inFlight = inFlightGauges();
    const a = inFlight("nexus.a.v1.A");
    a.inc();
    a.inc();
    inFlight("nexus.b.v1.B").inc();
    a.dec();
    expect(await lines(register, "nexus_rpc_in_flight")).toEqual([
      'nexus_rpc_in_flight{service="nexus.a.v1.A"} 1',
      'nexus_rpc_in_flight{service="nexus.b.v1.B"} 1',
    ]);
    a.dec();
    inFlight("nexus.b.v1.B").dec();
    expect(await lines(register, "nexus_rpc_in_flight")).toEqual([
      'nexus_rpc_in_flight{service="nexus.a.v1.A"} 0',
      'nexus_rpc_in_flight{service="nexus.b.v1.B"} 0',
    ]);
  });
});
