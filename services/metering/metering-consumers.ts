import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { RunCancelledSchema, RunCompletedSchema, RunFailedSchema, type RunUsage } from "../../gen/nexus/events/v1/agent_events_pb.js";
import { EntitlementOverridesChangedSchema, PlanChangedSchema, TenantCreatedSchema } from "../../gen/nexus/events/v1/auth_events_pb.js";
import type { EventHandler } from "../kernel/events/ports.js";
import { payloadOf } from "../kernel/events/protobuf-event.js";
import type { MeteringApplication, RunEnded } from "./metering-application.js";
import type { MeteringStore } from "./ports.js";
import { planFromProto } from "./proto-mapping.js";

/** Durable consumer turning run events into usage records. */
export const RUN_USAGE_CONSUMER = "metering-run-usage";
/** Its subject filter: every agent event (RunStarted is skipped). */
export const RUN_USAGE_SUBJECT = "agent.>";
/** Durable consumer projecting tenants' plans from auth events. */
export const TENANT_PLANS_CONSUMER = "metering-tenant-plans";
/** Its subject filter. */
export const TENANT_PLANS_SUBJECT = "auth.>";

function use(u: RunUsage | undefined): RunEnded["use"] {
  return {
    cpuSeconds: u?.cpuSeconds ?? 0,
    gpuSeconds: u?.gpuSeconds ?? 0,
    toolCalls: u?.toolCalls ?? 0,
    inputTokens: u?.inputTokens ?? 0n,
    outputTokens: u?.outputTokens ?? 0n,
  };
}

function when(t: Timestamp | undefined, fallback: Date): Date {
  return t ? timestampDate(t) : fallback;
}

/**
 * The handler of {@link RUN_USAGE_CONSUMER}: RunCompleted, RunCancelled and RunFailed each
 * become one usage record (see MeteringApplication.recordRunEnded). Events without a tenant
 * or request id cannot be attributed and are skipped with a warning rather than retried.
 */
export function runUsageHandler(app: MeteringApplication, store: MeteringStore, warn: (msg: string, ctx: object) => void): EventHandler {
  return async (event, tx) => {
    let run: RunEnded;
    switch (event.type) {
      case RunCompletedSchema.typeName: {
        const p = payloadOf(RunCompletedSchema, event);
        run = {
          eventId: event.eventId,
          outcome: "completed",
          tenantId: p.tenantId,
          plan: planFromProto(p.plan),
          requestId: p.requestId,
          reservationId: p.reservationId,
          use: use(p.usage),
          toolCallUsage: p.usage?.toolCallUsage ?? [],
          endedAt: when(p.completedAt, event.occurredAt),
        };
        break;
      }
      case RunCancelledSchema.typeName: {
        const p = payloadOf(RunCancelledSchema, event);
        run = {
          eventId: event.eventId,
          outcome: "cancelled",
          tenantId: p.tenantId,
          plan: planFromProto(p.plan),
          requestId: p.requestId,
          reservationId: p.reservationId,
          use: use(p.usage),
          toolCallUsage: p.usage?.toolCallUsage ?? [],
          endedAt: when(p.cancelledAt, event.occurredAt),
        };
        break;
      }
      case RunFailedSchema.typeName: {
        const p = payloadOf(RunFailedSchema, event);
        run = {
          eventId: event.eventId,
          outcome: "failed",
          tenantId: p.tenantId,
          plan: planFromProto(p.plan),
          requestId: p.requestId,
          reservationId: p.reservationId,
          use: use(p.usage),
          toolCallUsage: p.usage?.toolCallUsage ?? [],
          endedAt: when(p.failedAt, event.occurredAt),
          ...(p.reason ? { failureReason: p.reason } : {}),
        };
        break;
      }
      default:
        return; // RunStarted and future agent events carry no usage.
    }
    if (!run.tenantId || !run.requestId) {
      warn("run event without tenant or request id: not metered", { event_id: event.eventId, type: event.type });
      return;
    }
    await app.recordRunEnded(store.within(tx), run);
  };
}

/** The handler of {@link TENANT_PLANS_CONSUMER}: plan and run-allowance changes. */
export function tenantPlansHandler(app: MeteringApplication, store: MeteringStore): EventHandler {
  return async (event, tx) => {
    const uow = store.within(tx);
    switch (event.type) {
      case TenantCreatedSchema.typeName: {
        const p = payloadOf(TenantCreatedSchema, event);
        const plan = planFromProto(p.plan);
        if (p.tenantId && plan) await app.recordTenantPlan(uow, { tenantId: p.tenantId, plan });
        return;
      }
      case PlanChangedSchema.typeName: {
        const p = payloadOf(PlanChangedSchema, event);
        const plan = planFromProto(p.plan);
        if (p.tenantId && plan) await app.recordTenantPlan(uow, { tenantId: p.tenantId, plan });
        return;
      }
      case EntitlementOverridesChangedSchema.typeName: {
        const p = payloadOf(EntitlementOverridesChangedSchema, event);
        if (!p.tenantId) return;
        const o = p.overrides;
        await app.recordTenantPlan(uow, {
          tenantId: p.tenantId,
          overrides: {
            monthlyRunAllowance: o?.monthlyRunAllowance !== undefined ? Number(o.monthlyRunAllowance) : undefined,
            unlimitedRuns: o?.unlimitedRuns ?? false,
          },
        });
        return;
      }
      default:
        return;
    }
  };
}
