import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { RunDoneSchema, type RunResponse, RunStatus, TokenDeltaSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { RunEventChannel } from "./run-event-channel.js";

async function collect(channel: RunEventChannel): Promise<RunResponse[]> {
  const out: RunResponse[] = [];
  for await (const r of channel) out.push(r);
  return out;
}

describe("run event channel", () => {
  it("numbers events 1, 2, 3 … in push order and ends after close", async () => {
    const channel = new RunEventChannel();
    const collected = collect(channel);
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "a" }) });
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "b" }) });
    await new Promise((r) => setTimeout(r, 5));
    channel.push({ case: "done", value: create(RunDoneSchema, { status: RunStatus.COMPLETED }) });
    channel.close();
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "late" }) });
    const events = await collected;
    expect(events.map((e) => e.seq)).toEqual([1n, 2n, 3n]);
    expect(events.map((e) => e.event.case)).toEqual(["tokenDelta", "tokenDelta", "done"]);
  });

  it("fills quiet periods with heartbeats that share the seq counter", async () => {
    const channel = new RunEventChannel({ heartbeatMs: 20, clock: () => new Date("2026-01-01T00:00:00Z") });
    const collected = collect(channel);
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "a" }) });
    channel.startHeartbeats();
    // Wait (bounded) until at least two heartbeats arrived, then finish.
    for (let i = 0; i < 200 && channel.lastSeq < 3n; i++) await new Promise((r) => setTimeout(r, 10));
    channel.push({ case: "done", value: create(RunDoneSchema, { status: RunStatus.COMPLETED }) });
    channel.close();
    const events = await collected;
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => BigInt(i + 1)));
    const beats = events.filter((e) => e.event.case === "heartbeat");
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats[0]?.event.case === "heartbeat" && beats[0].event.value.sentAt?.seconds).toBe(1767225600n);
    expect(events.at(-1)?.event.case).toBe("done");
  });

  it("keeps its log: readers start after any seq, the same events reach every reader, a reader's signal ends it", async () => {
    const channel = new RunEventChannel();
    const first = collect(channel);
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "a" }) });
    channel.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: "b" }) });
    const late: RunResponse[] = [];
    const following = (async () => {
      for await (const r of channel.follow(1n)) late.push(r);
    })();
    const left = new AbortController();
    const leaving: RunResponse[] = [];
    const leaver = (async () => {
      for await (const r of channel.follow(0n, left.signal)) leaving.push(r);
    })();
    await new Promise((r) => setTimeout(r, 5));
    left.abort();
    await leaver;
    channel.push({ case: "done", value: create(RunDoneSchema, { status: RunStatus.COMPLETED }) });
    channel.close();
    await following;
    expect((await first).map((e) => e.seq)).toEqual([1n, 2n, 3n]);
    expect(late.map((e) => e.seq)).toEqual([2n, 3n]);
    expect(leaving.map((e) => e.seq)).toEqual([1n, 2n]);
    expect((await collect(channel)).map((e) => e.seq)).toEqual([1n, 2n, 3n]);
  });
});
