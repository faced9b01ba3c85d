import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type CheckQuotaRequest,
  CheckQuotaResponseSchema,
  type CommitQuotaRequest,
  CommitQuotaResponseSchema,
  DailyUsageSchema,
  type GetQuotaRequest,
  GetQuotaResponseSchema,
  type GetUsageHistoryRequest,
  GetUsageHistoryResponseSchema,
  type GetUsageSummaryRequest,
  GetUsageSummaryResponseSchema,
  type MeteringService,
  type ReleaseQuotaRequest,
  ReleaseQuotaResponseSchema,
  type SetQuotaRequest,
  SetQuotaResponseSchema,
} from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { platformPrincipal, principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import type { Principal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { TenantPlan } from "./domain/quota.js";
import { daysBetween, requireIsoDate } from "./domain/quota-period.js";
import { type MeteringApplication, type QuotaView, tenantPlanOf } from "./metering-application.js";
import type { MeteringStore, TenantDirectory } from "./ports.js";
import {
  decisionToProto,
  hardCapModeFromProto,
  hardCapModeToProto,
  periodFromProto,
  periodToProto,
  quotaToMessage,
  totalsToMessage,
  windowToMessage,
} from "./proto-mapping.js";

/** The ports the metering handler works with. */
export interface MeteringHandlerPorts {
  app: MeteringApplication;
  /** For the plan projection (plans of tenants other than the caller's). */
  store: MeteringStore;
  /** Asked when the projection does not know a tenant yet; undefined: never asked. */
  directory: TenantDirectory | undefined;
  clock: () => Date;
}

function limitFrom(v: bigint | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw domainError("INVALID_ARGUMENT", `${field} is too large`, { field });
  return Number(v);
}

/**
 * nexus.metering.v1.MeteringService. Shape checks live in the proto (protovalidate), who may
 * call what in the permission table; here: tenant scoping through the principal, calendar
 * checks the proto cannot express, and translation to the application's use cases.
 */
export class MeteringHandler implements ServiceImpl<typeof MeteringService> {
  constructor(private readonly ports: MeteringHandlerPorts) {}

  /**
   * The plan metering applies to a tenant: the caller's own principal carries it; for other
   * tenants (platform operators) the projection of auth events, else the auth service.
   */
  private async planFor(tenantId: string, principal: Principal, ctx: HandlerContext): Promise<TenantPlan> {
    if (principal.kind === "tenant" && principal.tenantId === tenantId) {
      return { plan: principal.plan, monthlyRunAllowance: principal.entitlements.monthlyRunAllowance };
    }
    const record =
      (await this.ports.store.tenantPlan(tenantId)) ??
      (await this.ports.directory?.lookup(tenantId, { authorization: ctx.requestHeader.get("authorization") ?? undefined }));
    if (!record) throw domainError("NOT_FOUND", "no such tenant", { tenant_id: tenantId });
    return tenantPlanOf(record);
  }

  private windows(view: QuotaView) {
    return view.windows.map(windowToMessage);
  }

  async checkQuota(req: CheckQuotaRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const tenantId = tenantScope(principal, req.tenantId);
    const plan = await this.planFor(tenantId, principal, ctx);
    const result = await this.ports.app.checkQuota({
      tenantId,
      requestId: req.requestId,
      estimatedRunUnits: req.estimatedRunUnits,
      plan,
      actor: principal.keyId,
    });
    if (result.kind === "refused") {
      const b = result.breach;
      const what = b.metric === "runs" ? "runs" : "run units";
      throw domainError(
        "QUOTA_EXCEEDED",
        `the ${b.period === "day" ? "daily" : "monthly"} ${what} quota is used up (${b.used} of ${b.limit}); it resets at ${b.resetsAt.toISOString()}`,
        {
          period: b.period,
          metric: b.metric,
          limit: b.limit,
          used: b.used,
          remaining: b.remaining,
          resets_at: b.resetsAt.toISOString(),
        },
        { retryAfterMs: Math.max(0, b.resetsAt.getTime() - this.ports.clock().getTime()) },
      );
    }
    return create(CheckQuotaResponseSchema, {
      reservationId: result.reservation.id,
      decision: decisionToProto(result.reservation.decision),
      hardCapMode: hardCapModeToProto(result.quota.hardCapMode),
      windows: this.windows(result),
      reservationExpiresAt: timestampFromDate(result.reservation.expiresAt),
    });
  }

  async commitQuota(req: CommitQuotaRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const view = await this.ports.app.settleReservation(
      req.reservationId,
      { type: "Commit" },
      principal.kind === "tenant" ? principal.tenantId : undefined,
      (tenantId) => this.planFor(tenantId, principal, ctx),
    );
    return create(CommitQuotaResponseSchema, { windows: this.windows(view) });
  }

  async releaseQuota(req: ReleaseQuotaRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const view = await this.ports.app.settleReservation(
      req.reservationId,
      { type: "Release", reason: req.reason },
      principal.kind === "tenant" ? principal.tenantId : undefined,
      (tenantId) => this.planFor(tenantId, principal, ctx),
    );
    return create(ReleaseQuotaResponseSchema, { windows: this.windows(view) });
  }

  async getUsageSummary(req: GetUsageSummaryRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const tenantId = tenantScope(principal, req.tenantId);
    const period = periodFromProto(req.period);
    if (period === undefined) throw domainError("INVALID_ARGUMENT", "period is required (day or month)", { field: "period" });
    const at = req.date ? requireIsoDate(req.date, "date") : undefined;
    const plan = await this.planFor(tenantId, principal, ctx);
    const s = await this.ports.app.usageSummary(tenantId, period, at, plan);
    return create(GetUsageSummaryResponseSchema, {
      tenantId,
      period: periodToProto(period),
      periodStart: timestampFromDate(s.start),
      periodEnd: timestampFromDate(s.end),
      totals: totalsToMessage(s.totals),
      quota: windowToMessage(s.window),
    });
  }

  async getUsageHistory(req: GetUsageHistoryRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const tenantId = tenantScope(principal, req.tenantId);
    const days = daysBetween(requireIsoDate(req.startDate, "start_date"), requireIsoDate(req.endDate, "end_date"));
    const h = await this.ports.app.usageHistory(tenantId, days);
    return create(GetUsageHistoryResponseSchema, {
      tenantId,
      days: h.days.map((d) => create(DailyUsageSchema, { date: d.date, totals: totalsToMessage(d.totals) })),
      totals: totalsToMessage(h.totals),
    });
  }

  async getQuota(req: GetQuotaRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const tenantId = tenantScope(principal, req.tenantId);
    const view = await this.ports.app.getQuota(tenantId, await this.planFor(tenantId, principal, ctx));
    return create(GetQuotaResponseSchema, { quota: quotaToMessage(tenantId, view.quota), windows: this.windows(view) });
  }

  async setQuota(req: SetQuotaRequest, ctx: HandlerContext) {
    // The permission table admits platform operators only; checked again because a tenant
    // changing its own quota is exactly the hole the predecessor had.
    const principal = platformPrincipal(ctx, "only platform operators can change quotas");
    const plan = await this.planFor(req.tenantId, principal, ctx);
    const view = await this.ports.app.setQuota(
      req.tenantId,
      {
        dailyRuns: limitFrom(req.dailyRunsLimit, "daily_runs_limit"),
        monthlyRuns: limitFrom(req.monthlyRunsLimit, "monthly_runs_limit"),
        dailyRunUnits: req.dailyRunUnitsLimit,
        monthlyRunUnits: req.monthlyRunUnitsLimit,
        softCapRatio: req.softCapRatio,
        hardCapMode: hardCapModeFromProto(req.hardCapMode),
      },
      plan,
      principal.keyId,
    );
    return create(SetQuotaResponseSchema, { quota: quotaToMessage(req.tenantId, view.quota), windows: this.windows(view) });
  }
}
