import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Plan } from "../../../gen/nexus/auth/v1/tenant_pb.js";
import {
  RunCancelledSchema,
  RunCompletedSchema,
  RunFailedSchema,
  RunStartedSchema,
  type RunTimings,
  RunTimingsSchema,
  type RunUsage,
  RunUsageSchema,
} from "../../../gen/nexus/events/v1/agent_events_pb.js";
import type { PlanName } from "../../kernel/context.js";
import type { NewEvent } from "../../kernel/events/ports.js";
import { eventOf } from "../../kernel/events/protobuf-event.js";
import type { ToolCallUsageFigure } from "./run-context.js";

const PLANS: Readonly<Record<PlanName, Plan>> = { free: Plan.FREE, pro: Plan.PRO, enterprise: Plan.ENTERPRISE };

/** The event stream of one run: `agent-run-<tenant>-<request id>`. */
export function runStreamId(tenantId: string, requestId: string): string {
  return `agent-run-${tenantId}-${requestId}`;
}

/** Who and what a run is about (common to its events). */
export interface RunIdentity {
  tenantId: string;
  plan: PlanName;
  requestId: string;
  sessionId: string;
  corpusId: string;
  provider: string;
  model: string;
  reservationId: string;
  startedAt: Date;
}

/** What a run used, as measured. */
export interface RunUsageFigures {
  cpuSeconds: number;
  gpuSeconds: number;
  toolCalls: number;
  /** The successful module tool calls (with their marketplace listing). */
  toolCallUsage?: readonly ToolCallUsageFigure[];
  inputTokens: number;
  outputTokens: number;
  estimated: boolean;
}

/** How long a run took, in milliseconds. */
export interface RunTimingFigures {
  totalMs: number;
  timeToFirstTokenMs?: number;
  retrievalMs: number;
  generationMs: number;
}

function usage(u: RunUsageFigures): RunUsage {
  return create(RunUsageSchema, {
    cpuSeconds: u.cpuSeconds,
    gpuSeconds: u.gpuSeconds,
    toolCalls: u.toolCalls,
    toolCallUsage: (u.toolCallUsage ?? []).map((c) => ({ ...c })),
    inputTokens: BigInt(Math.max(0, Math.round(u.inputTokens))),
    outputTokens: BigInt(Math.max(0, Math.round(u.outputTokens))),
    tokenCountsEstimated: u.estimated,
  });
}

function timings(t: RunTimingFigures): RunTimings {
  return create(RunTimingsSchema, {
    total: durationFromMs(Math.round(t.totalMs)),
    ...(t.timeToFirstTokenMs !== undefined ? { timeToFirstToken: durationFromMs(Math.round(t.timeToFirstTokenMs)) } : {}),
    retrieval: durationFromMs(Math.round(t.retrievalMs)),
    generation: durationFromMs(Math.round(t.generationMs)),
  });
}

/** RunStarted (nexus.agent.run_started; audit run.invoked). */
export function runStarted(id: RunIdentity): NewEvent {
  return eventOf(RunStartedSchema, {
    tenantId: id.tenantId,
    plan: PLANS[id.plan],
    requestId: id.requestId,
    sessionId: id.sessionId,
    corpusId: id.corpusId,
    provider: id.provider,
    model: id.model,
    reservationId: id.reservationId,
    startedAt: timestampFromDate(id.startedAt),
  });
}

/** RunCompleted (nexus.agent.run_completed): metering's input for run units. */
export function runCompleted(
  id: RunIdentity,
  u: RunUsageFigures,
  t: RunTimingFigures,
  counts: { retrievedChunks: number; citations: number },
  completedAt: Date,
): NewEvent {
  return eventOf(RunCompletedSchema, {
    tenantId: id.tenantId,
    plan: PLANS[id.plan],
    requestId: id.requestId,
    sessionId: id.sessionId,
    corpusId: id.corpusId,
    provider: id.provider,
    model: id.model,
    reservationId: id.reservationId,
    usage: usage(u),
    timings: timings(t),
    retrievedChunks: counts.retrievedChunks,
    citations: counts.citations,
    startedAt: timestampFromDate(id.startedAt),
    completedAt: timestampFromDate(completedAt),
  });
}

/** RunFailed (nexus.agent.run_failed). */
export function runFailed(
  id: RunIdentity,
  u: RunUsageFigures,
  t: RunTimingFigures,
  failure: { code: string; reason: string; message: string; failedStep: string },
  failedAt: Date,
): NewEvent {
  return eventOf(RunFailedSchema, {
    tenantId: id.tenantId,
    plan: PLANS[id.plan],
    requestId: id.requestId,
    sessionId: id.sessionId,
    corpusId: id.corpusId,
    provider: id.provider,
    model: id.model,
    reservationId: id.reservationId,
    usage: usage(u),
    timings: timings(t),
    code: failure.code,
    reason: failure.reason,
    message: failure.message,
    failedStep: failure.failedStep,
    startedAt: timestampFromDate(id.startedAt),
    failedAt: timestampFromDate(failedAt),
  });
}

/** RunCancelled (nexus.agent.run_cancelled). */
export function runCancelled(id: RunIdentity, u: RunUsageFigures, t: RunTimingFigures, byCancelRun: boolean, cancelledAt: Date): NewEvent {
  return eventOf(RunCancelledSchema, {
    tenantId: id.tenantId,
    plan: PLANS[id.plan],
    requestId: id.requestId,
    sessionId: id.sessionId,
    corpusId: id.corpusId,
    reservationId: id.reservationId,
    usage: usage(u),
    timings: timings(t),
    byCancelRun,
    cancelledAt: timestampFromDate(cancelledAt),
  });
}
