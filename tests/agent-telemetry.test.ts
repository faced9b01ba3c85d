import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunResponse } from "../gen/nexus/agent/v1/agent_service_pb.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { describeWithPostgres } from "./support/services.js";

// What any OTLP backend receives from a run: `nexus dev` exports its traces (OTLP over
// HTTP, JSON) to a small collector in this test, and the run's state machine shows up as
// spans — the model call and the retrieval following the OpenTelemetry GenAI conventions —
// and the time-to-first-token and run-duration histograms show up on /metrics.

interface OtlpAttribute {
  key: string;
  value: {
    stringValue?: string;
    intValue?: string | number;
    doubleValue?: number;
    boolValue?: boolean;
    arrayValue?: { values: Array<{ stringValue?: string }> };
  };
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: OtlpAttribute[];
}

function attr(span: OtlpSpan | undefined, key: string): unknown {
  const v = span?.attributes?.find((a) => a.key === key)?.value;
  if (v === undefined) return undefined;
  if (v.arrayValue) return v.arrayValue.values.map((x) => x.stringValue);
  return v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : undefined) ?? v.doubleValue ?? v.boolValue;
}

describeWithPostgres("agent telemetry: GenAI spans over OTLP and run histograms", () => {
  let mesh: AgentMesh;
  let collector: http.Server;
  const spans: OtlpSpan[] = [];

  beforeAll(async () => {
    collector = http.createServer((req, res) => {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (c: string) => (body += c));
      req.on("end", () => {
        if (req.url === "/v1/traces" && (req.headers["content-type"] ?? "").includes("json")) {
          const parsed = JSON.parse(body) as { resourceSpans?: Array<{ scopeSpans?: Array<{ spans?: OtlpSpan[] }> }> };
          for (const rs of parsed.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans.push(...(ss.spans ?? []));
        }
        res.writeHead(200, { "content-type": "application/json" }).end("{}");
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
    const { port } = collector.address() as AddressInfo;
    mesh = await startAgentMesh({
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_TRACES_EXPORTER: "otlp",
      OTEL_BSP_SCHEDULE_DELAY: "100",
    });
    await ingestCorpus(mesh.client(), "handbook", [
      { id: "keys", text: "To rotate an API key, run nexus keys rotate with the key id. The old key keeps working for the grace period." },
    ]);
  }, 120_000);
  afterAll(async () => {
    await mesh?.close();
    await new Promise<void>((resolve) => collector?.close(() => resolve()));
  });

  it("exports the run's steps as spans, with the model call and retrieval per the GenAI conventions", async () => {
    const events: RunResponse[] = [];
    for await (const r of mesh.client().agent.run({ corpusId: "handbook", message: "How do I rotate an API key?" })) events.push(r);
    const accepted = events[0]?.event;
    if (accepted?.case !== "accepted") throw new Error("no accepted event");
    const requestId = accepted.value.requestId;

    let run: OtlpSpan | undefined;
    await eventually("the run's spans to reach the collector", () => {
      run = spans.find((s) => s.name === "invoke_agent nexus" && attr(s, "nexus.request_id") === requestId);
      return run !== undefined && spans.filter((s) => s.traceId === run!.traceId && s.name === "agent.persist").length === 1;
    });
    const trace = spans.filter((s) => s.traceId === run!.traceId);
    const byName = (name: string) => trace.find((s) => s.name === name);

    // The run span hangs under the RPC's server span.
    const rpc = trace.find((s) => s.spanId === run!.parentSpanId);
    expect(rpc?.name).toBe("nexus.agent.v1.AgentService/Run");
    expect(attr(run, "gen_ai.operation.name")).toBe("invoke_agent");
    expect(attr(run, "gen_ai.conversation.id")).toBe(accepted.value.sessionId);

    // One span per state-machine step, children of the run span.
    for (const step of ["accepted", "quota_check", "retrieve", "generate", "persist"]) {
      expect(byName(`agent.${step}`)?.parentSpanId, step).toBe(run!.spanId);
    }

    // The retrieval call: operation "retrieval", the corpus as data source; the Search RPC under it.
    const retrieval = byName("retrieval handbook");
    expect(attr(retrieval, "gen_ai.operation.name")).toBe("retrieval");
    expect(attr(retrieval, "gen_ai.data_source.id")).toBe("handbook");
    expect(trace.some((s) => s.parentSpanId === retrieval?.spanId && s.name === "nexus.retrieval.v1.RetrievalService/Search")).toBe(true);

    // The model call: chat <model> under the generate step, with usage and finish reason.
    const chat = byName("chat extractive-v1");
    expect(chat?.parentSpanId).toBe(byName("agent.generate")?.spanId);
    expect(attr(chat, "gen_ai.operation.name")).toBe("chat");
    expect(attr(chat, "gen_ai.provider.name")).toBe("nexus.extractive");
    expect(attr(chat, "gen_ai.system")).toBe("nexus.extractive");
    expect(attr(chat, "gen_ai.request.model")).toBe("extractive-v1");
    expect(attr(chat, "gen_ai.response.model")).toBe("extractive-v1");
    expect(attr(chat, "gen_ai.response.finish_reasons")).toEqual(["stop"]);
    expect(attr(chat, "gen_ai.usage.input_tokens")).toBeGreaterThan(0);
    expect(attr(chat, "gen_ai.usage.output_tokens")).toBeGreaterThan(0);
    expect(typeof attr(chat, "gen_ai.response.time_to_first_chunk")).toBe("number");
  });

  it("exports time to first token and run duration as histograms on /metrics", async () => {
    const metrics = await (await fetch(`${mesh.url}/metrics`)).text();
    expect(metrics).toMatch(/nexus_agent_time_to_first_token_seconds_count\{provider="extractive"\} [1-9]/);
    expect(metrics).toMatch(/nexus_agent_run_duration_seconds_count\{provider="extractive",status="completed"\} [1-9]/);
    expect(metrics).toMatch(/nexus_agent_runs_total\{provider="extractive",status="completed"\} [1-9]/);
    expect(metrics).toMatch(/nexus_agent_circuit_state\{dependency="retrieval"\} 0/);
  });
});
