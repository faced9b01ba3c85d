import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import {
  QuotaHardCapBlockedSchema,
  QuotaOverageSchema,
  QuotaSoftCapReachedSchema,
  UsageRecordedSchema,
} from "../../gen/nexus/events/v1/metering_events_pb.js";
import { effectiveEntitlements } from "../kernel/authz/plans.js";
import { executeInTransaction, recordFacts } from "../kernel/commands/index.js";
import type { PlanName } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { NewEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import {
  type CustomQuota,
  decideAdmission,
  type EffectiveQuota,
  effectiveQuota,
  type LimitBreach,
  type QuotaSettingsReplaced,
  type SoftCapMark,
  softCapsReached,
  type TenantPlan,
  type WindowCounters,
  type WindowStanding,
  windowStanding,
} from "./domain/quota.js";
import { isoDate, type PeriodKind, periodEnd, periodStart } from "./domain/quota-period.js";
import { decideReservation, evolveReservation, type Reservation, type ReservationCommand } from "./domain/reservation.js";
import { type RunResourceUse, runUnits } from "./domain/run-units.js";
import { type QuotaSettingsAggregate, quotaSettingsAggregate, quotaStreamId, usageStreamId } from "./metering-aggregates.js";
import { meteringMetrics } from "./metering-metrics.js";
import type { MeteringSettings } from "./metering-settings.js";
import type { MeteringStore, QuotaUnitOfWork, RunOutcome, TenantPlanRecord, UsageTotals } from "./ports.js";
import { metricToProto, outcomeToProto, periodToProto, planToProto } from "./proto-mapping.js";
import { usageRecordId } from "./usage-projection.js";

export { quotaStreamId, usageStreamId } from "./metering-aggregates.js";

/** The plan a tenant plan record amounts to (auth's catalog with the tenant's overrides). */
export function tenantPlanOf(record: TenantPlanRecord): TenantPlan {
  const overrides = {
    features: [],
    ...(record.overrideMonthlyRunAllowance !== undefined ? { monthlyRunAllowance: record.overrideMonthlyRunAllowance } : {}),
    ...(record.overrideUnlimitedRuns ? { unlimitedRuns: true } : {}),
  };
  return { plan: record.plan, monthlyRunAllowance: effectiveEntitlements(record.plan, overrides).monthlyRunAllowance };
}

/** A tenant's settings and its current day and month windows. */
export interface QuotaView {
  quota: EffectiveQuota;
  /** Day first. */
  windows: WindowStanding[];
}

/** Input of {@link MeteringApplication.checkQuota}. */
export interface CheckQuotaInput {
  tenantId: string;
  requestId: string;
  estimatedRunUnits: number;
  plan: TenantPlan;
  /** Who asked (API key id), for the events. */
  actor: string;
}

/** The answer of CheckQuota: an admission with its reservation, or the refused limit. */
export type CheckQuotaResult =
  | ({ kind: "admitted"; reservation: Reservation } & QuotaView)
  | ({ kind: "refused"; breach: LimitBreach } & QuotaView);

/** A run event as metering reads it (RunCompleted, RunFailed or RunCancelled). */
export interface RunEnded {
  eventId: string;
  outcome: RunOutcome;
  tenantId: string;
  plan: PlanName | undefined;
  requestId: string;
  reservationId: string;
  use: RunResourceUse & { inputTokens: bigint; outputTokens: bigint };
  /** The run's successful module tool calls, passed on in UsageRecorded (revenue ledger). */
  toolCallUsage?: readonly { module: string; tool: string; moduleVersion: string; listingId: string; cached: boolean }[];
  /** When the run ended (falls back to the event's time). */
  endedAt: Date;
  /** Why it failed (RunFailed), for the release reason. */
  failureReason?: string;
}

/** Options of {@link MeteringApplication}. */
export interface MeteringApplicationOptions {
  store: MeteringStore;
  settings: MeteringSettings;
  clock: () => Date;
  logger: Logger;
}

const SYSTEM_ACTOR = "system";

/**
 * Metering's use cases: quota reservations and their settlement, usage records from run
 * events, quota settings, and usage reports. Every change to a tenant's counters happens in
 * one transaction holding that tenant's lock, so concurrent CheckQuota calls see each
 * other's reservations and a limit of N admits exactly N runs.
 */
export class MeteringApplication {
  private readonly store: MeteringStore;
  private readonly settings: MeteringSettings;
  private readonly clock: () => Date;
  private readonly logger: Logger;
  private readonly quotaSettings: QuotaSettingsAggregate;

  constructor(options: MeteringApplicationOptions) {
    this.store = options.store;
    this.quotaSettings = quotaSettingsAggregate(options.store);
    this.settings = options.settings;
    this.clock = options.clock;
    this.logger = options.logger;
  }

  /** The effective quota of a tenant under a plan. */
  private effective(custom: CustomQuota | undefined, plan: TenantPlan): EffectiveQuota {
    return effectiveQuota(custom, plan, this.settings.defaultSoftCapRatio);
  }

  private currentKeys(now: Date): Array<{ period: PeriodKind; periodStart: Date }> {
    return [
      { period: "day", periodStart: periodStart("day", now) },
      { period: "month", periodStart: periodStart("month", now) },
    ];
  }

  private standings(tenantId: string, windows: WindowCounters[], quota: EffectiveQuota): WindowStanding[] {
    const out = windows.map((w) => windowStanding(w, quota));
    for (const s of out) {
      if (s.usedRatio !== undefined) meteringMetrics.quotaUsedRatio.set({ org: tenantId, period: s.period }, s.usedRatio);
    }
    return out;
  }

  // ------------------------------------------------------------ reservations

  /**
   * Reserves one run (CheckQuota). Idempotent per (tenant, request id). Refusals are returned,
   * not thrown, so the QuotaHardCapBlocked event commits before the caller raises the error.
   */
  async checkQuota(input: CheckQuotaInput): Promise<CheckQuotaResult> {
    const now = this.clock();
    const keys = this.currentKeys(now);
    const { tenantId } = input;
    const metadata = { tenantId, actor: input.actor };
    type Outcome =
      | { kind: "admitted"; reservation: Reservation; quota: EffectiveQuota; counters: WindowCounters[] }
      | { kind: "refused"; breach: LimitBreach; quota: EffectiveQuota; counters: WindowCounters[] };
    const result = await this.store.transaction(async (uow): Promise<Outcome> => {
      await uow.lockTenant(tenantId);
      // One read for the common case (a run waits for this before its first token).
      const state = await uow.admissionState(tenantId, input.requestId, keys, now);
      let { windows, existing } = state;
      if (state.due.length > 0) {
        // Expiring changes windows and maybe the request's reservation: read them again.
        await this.expireDue(uow, tenantId, now, state.due);
        windows = await uow.windows(tenantId, keys);
        existing = await uow.reservationByRequest(tenantId, input.requestId);
      }
      const quota = this.effective(state.custom, input.plan);
      const [day, month] = windows as [WindowCounters, WindowCounters];
      if (existing) return { kind: "admitted", reservation: existing, quota, counters: [day, month] };

      const admission = decideAdmission({ estimatedRunUnits: input.estimatedRunUnits, now }, quota, { day, month });
      if (admission.kind === "refused") {
        const b = admission.breach;
        // A tenant refused at a limit is past its soft caps too (e.g. SetQuota lowered the
        // limit below today's usage): warn once, like an admission would have.
        const marks = [...softCapsReached(day, quota), ...softCapsReached(month, quota)];
        await recordFacts(
          uow.tx,
          quotaStreamId(tenantId),
          [
            ...(await this.softCapEvents(uow, tenantId, marks, quota, now)),
            eventOf(QuotaHardCapBlockedSchema, {
              tenantId,
              period: periodToProto(b.period),
              periodStart: timestampFromDate(b.periodStart),
              metric: metricToProto(b.metric),
              limit: b.limit,
              used: b.used,
              requestId: input.requestId,
            }),
          ],
          { metadata },
        );
        return { kind: "refused", breach: b, quota, counters: [day, month] };
      }

      const reservation: Reservation = {
        id: randomUUID(),
        tenantId,
        requestId: input.requestId,
        state: "reserved",
        decision: admission.decision,
        estimatedRunUnits: Math.max(0, input.estimatedRunUnits),
        dayStart: day.periodStart,
        monthStart: month.periodStart,
        createdAt: now,
        expiresAt: new Date(now.getTime() + this.settings.reservationTtlMs),
        settledAt: undefined,
        releaseReason: undefined,
      };
      const [newDay, newMonth] = await uow.reserve(reservation, admission.deltas);
      const events = await this.softCapEvents(uow, tenantId, admission.softCaps, quota, now);
      if (admission.overage) {
        const o = admission.overage;
        events.push(
          eventOf(QuotaOverageSchema, {
            tenantId,
            period: periodToProto(o.period),
            periodStart: timestampFromDate(o.periodStart),
            metric: metricToProto(o.metric),
            limit: o.limit,
            used: o.metric === "runs" ? o.used + 1 : o.used + reservation.estimatedRunUnits,
            requestId: input.requestId,
          }),
        );
      }
      await recordFacts(uow.tx, quotaStreamId(tenantId), events, { metadata });
      return { kind: "admitted", reservation, quota, counters: [newDay, newMonth] };
    });
    // Standings (and the gauge) only once the transaction committed.
    const windows = this.standings(tenantId, result.counters, result.quota);
    return result.kind === "admitted"
      ? { kind: "admitted", reservation: result.reservation, quota: result.quota, windows }
      : { kind: "refused", breach: result.breach, quota: result.quota, windows };
  }

  /** QuotaSoftCapReached events for marks not noted before in their period (once each). */
  private async softCapEvents(
    uow: QuotaUnitOfWork,
    tenantId: string,
    marks: readonly SoftCapMark[],
    quota: EffectiveQuota,
    now: Date,
  ): Promise<NewEvent[]> {
    const events: NewEvent[] = [];
    for (const m of marks) {
      if (!(await uow.noteSoftCap(tenantId, m.period, m.periodStart, m.metric, now))) continue;
      events.push(
        eventOf(QuotaSoftCapReachedSchema, {
          tenantId,
          period: periodToProto(m.period),
          periodStart: timestampFromDate(m.periodStart),
          metric: metricToProto(m.metric),
          limit: m.limit,
          used: m.used,
          softCapRatio: quota.softCapRatio,
        }),
      );
    }
    return events;
  }

  /** Applies a settle command to a locked reservation; returns it as it is afterwards. */
  private async settle(uow: QuotaUnitOfWork, r: Reservation, cmd: ReservationCommand): Promise<Reservation> {
    const d = decideReservation(cmd, r);
    if (d.kind === "rejected") throw domainError("FAILED_PRECONDITION", d.message, { reservation_id: r.id, state: r.state });
    if (d.kind === "unchanged") return r;
    const next = evolveReservation(r, d.event);
    await uow.updateReservation(r.id, next.state, d.event.at, d.event.type === "ReservationReleased" ? d.event.reason : undefined);
    await uow.addToWindow(r.tenantId, "day", r.dayStart, d.delta);
    await uow.addToWindow(r.tenantId, "month", r.monthStart, d.delta);
    return next;
  }

  /** Expires this tenant's reservations whose TTL ended (under the tenant's lock); `due` when already read. */
  private async expireDue(uow: QuotaUnitOfWork, tenantId: string, now: Date, known?: Reservation[]): Promise<number> {
    const due = known ?? (await uow.dueReservations(tenantId, now));
    for (const r of due) await this.settle(uow, r, { type: "Expire", at: now });
    if (due.length > 0) this.logger.info({ tenant_id: tenantId, expired: due.length }, "expired unsettled quota reservations");
    return due.length;
  }

  /** Loads a reservation the caller may see; NOT_FOUND otherwise (no existence leak). */
  private async visibleReservation(id: string, tenantScope: string | undefined): Promise<Reservation> {
    const r = await this.store.reservation(id);
    if (!r || (tenantScope !== undefined && r.tenantId !== tenantScope)) {
      throw domainError("NOT_FOUND", "no such reservation", { reservation_id: id });
    }
    return r;
  }

  /**
   * CommitQuota / ReleaseQuota. `tenantScope` is the caller's tenant (undefined for platform
   * operators); `planOf` resolves the plan for the windows in the answer.
   */
  async settleReservation(
    reservationId: string,
    cmd: { type: "Commit" } | { type: "Release"; reason: string },
    tenantScope: string | undefined,
    planOf: (tenantId: string) => Promise<TenantPlan>,
  ): Promise<QuotaView> {
    const found = await this.visibleReservation(reservationId, tenantScope);
    const plan = await planOf(found.tenantId);
    const now = this.clock();
    const view = await this.store.transaction(async (uow) => {
      await uow.lockTenant(found.tenantId);
      const r = await uow.reservation(reservationId);
      if (!r) throw domainError("NOT_FOUND", "no such reservation", { reservation_id: reservationId });
      await this.settle(
        uow,
        r,
        cmd.type === "Commit"
          ? { type: "Commit", at: now, source: "api" }
          : { type: "Release", at: now, reason: cmd.reason || "released", source: "api" },
      );
      const quota = this.effective(await uow.customQuota(r.tenantId), plan);
      return { quota, counters: await uow.windows(r.tenantId, this.currentKeys(now)) };
    });
    return { quota: view.quota, windows: this.standings(found.tenantId, view.counters, view.quota) };
  }

  /** Expires due reservations of every tenant (background sweep). Returns how many. */
  async sweepExpiredReservations(limit = 100): Promise<number> {
    const now = this.clock();
    let total = 0;
    for (const tenantId of await this.store.tenantsWithDueReservations(now, limit)) {
      total += await this.store.transaction(async (uow) => {
        await uow.lockTenant(tenantId);
        return this.expireDue(uow, tenantId, now);
      });
    }
    return total;
  }

  // ------------------------------------------------------------ usage from run events

  /**
   * Records one run's usage from its RunCompleted / RunCancelled / RunFailed event, in the
   * consumer's transaction. Exactly once per run: the record is unique by request id and by
   * event id, and a second event for the same run changes nothing. Completed and cancelled
   * runs are charged and count as used; failed runs are recorded with 0 run units and give
   * their reservation back.
   */
  async recordRunEnded(uow: QuotaUnitOfWork, run: RunEnded): Promise<"recorded" | "duplicate"> {
    const { tenantId } = run;
    const now = this.clock();
    await uow.lockTenant(tenantId);
    const reservation =
      (run.reservationId ? await uow.reservation(run.reservationId) : undefined) ??
      (await uow.reservationByRequest(tenantId, run.requestId));
    const usable = reservation && reservation.tenantId === tenantId ? reservation : undefined;
    const plan = run.plan ?? "free";
    const charged = run.outcome !== "failed";
    const charge = runUnits(run.use, plan, this.settings.rates);
    const units = charged ? charge.runUnits : 0;
    const dayStart = usable?.dayStart ?? periodStart("day", run.endedAt);
    const monthStart = usable?.monthStart ?? periodStart("month", run.endedAt);
    // The row's id comes from the run event and its recorded_at is UsageRecorded's occurred_at,
    // so a rebuild from the log (usage-projection.ts) gives the row back exactly.
    const inserted = await uow.insertUsageRecord({
      id: usageRecordId(run.eventId),
      tenantId,
      requestId: run.requestId,
      sourceEventId: run.eventId,
      reservationId: usable?.id,
      plan,
      outcome: run.outcome,
      runUnits: units,
      cpuSeconds: run.use.cpuSeconds,
      gpuSeconds: run.use.gpuSeconds,
      toolCalls: run.use.toolCalls,
      inputTokens: run.use.inputTokens,
      outputTokens: run.use.outputTokens,
      tierMultiplier: charge.tierMultiplier,
      toolCallOverhead: charge.toolCallOverhead,
      usageDate: dayStart,
      recordedAt: now,
    });
    if (!inserted) return "duplicate";

    if (usable) {
      await this.settle(
        uow,
        usable,
        charged
          ? { type: "Commit", at: now, source: "run_ended" }
          : { type: "Release", at: now, reason: run.failureReason ? `run_failed:${run.failureReason}` : "run_failed", source: "run_ended" },
      );
    } else if (charged) {
      // A run admitted without metering (or whose reservation is unknown) still counts.
      await uow.addToWindow(tenantId, "day", dayStart, { runsUsed: 1 });
      await uow.addToWindow(tenantId, "month", monthStart, { runsUsed: 1 });
    }
    const events: NewEvent[] = [];
    if (charged) {
      // Run units arrive only now, and an unreserved run was only now counted: either may
      // carry the tenant past a soft cap.
      const day = await uow.addToWindow(tenantId, "day", dayStart, { runUnitsUsed: units });
      const month = await uow.addToWindow(tenantId, "month", monthStart, { runUnitsUsed: units });
      const planRecord = await uow.tenantPlan(tenantId);
      const tenantPlan = planRecord
        ? tenantPlanOf(planRecord)
        : tenantPlanOf({ tenantId, plan, overrideUnlimitedRuns: false, overrideMonthlyRunAllowance: undefined });
      const quota = this.effective(await uow.customQuota(tenantId), tenantPlan);
      const marks = [...softCapsReached(day, quota), ...softCapsReached(month, quota)];
      events.push(...(await this.softCapEvents(uow, tenantId, marks, quota, now)));
    }
    await recordFacts(
      uow.tx,
      usageStreamId(tenantId),
      [
        eventOf(UsageRecordedSchema, {
          tenantId,
          plan: planToProto(plan),
          requestId: run.requestId,
          outcome: outcomeToProto(run.outcome),
          runUnits: units,
          cpuSeconds: run.use.cpuSeconds,
          gpuSeconds: run.use.gpuSeconds,
          toolCalls: run.use.toolCalls,
          tierMultiplier: charge.tierMultiplier,
          toolCallOverhead: charge.toolCallOverhead,
          inputTokens: run.use.inputTokens,
          outputTokens: run.use.outputTokens,
          usageDate: isoDate(dayStart),
          sourceEventId: run.eventId,
          toolCallUsage: (run.toolCallUsage ?? []).map((c) => ({ ...c })),
          reservationId: usable?.id ?? "",
        }),
      ].map((e) => ({ ...e, occurredAt: now })),
      { metadata: { tenantId, actor: SYSTEM_ACTOR } },
    );
    await recordFacts(uow.tx, quotaStreamId(tenantId), events, { metadata: { tenantId, actor: SYSTEM_ACTOR } });
    meteringMetrics.runs.inc({ org: tenantId, tier: plan, outcome: run.outcome });
    if (units > 0) meteringMetrics.runUnits.inc({ org: tenantId, tier: plan }, units);
    return "recorded";
  }

  /** Keeps the plan projection current from auth events (consumer transaction). */
  async recordTenantPlan(uow: QuotaUnitOfWork, change: TenantPlanChange): Promise<void> {
    const current = await uow.tenantPlan(change.tenantId);
    const next: TenantPlanRecord = {
      tenantId: change.tenantId,
      plan: change.plan ?? current?.plan ?? "free",
      overrideMonthlyRunAllowance:
        change.overrides !== undefined ? change.overrides.monthlyRunAllowance : current?.overrideMonthlyRunAllowance,
      overrideUnlimitedRuns: change.overrides !== undefined ? change.overrides.unlimitedRuns : (current?.overrideUnlimitedRuns ?? false),
    };
    await uow.saveTenantPlan(next);
  }

  // ------------------------------------------------------------ settings and reports

  /** GetQuota: settings and the current windows. */
  async getQuota(tenantId: string, plan: TenantPlan): Promise<QuotaView> {
    const quota = this.effective(await this.store.customQuota(tenantId), plan);
    const counters = await this.store.readWindows(tenantId, this.currentKeys(this.clock()));
    return { quota, windows: this.standings(tenantId, counters, quota) };
  }

  /** SetQuota: replaces the tenant's custom settings; emits QuotaUpdated. */
  async setQuota(tenantId: string, custom: Omit<CustomQuota, "updatedAt">, plan: TenantPlan, actor: string): Promise<QuotaView> {
    const now = this.clock();
    const view = await this.store.transaction(async (uow) => {
      const command = {
        type: "SetQuota",
        tenantId,
        custom,
        plan,
        defaultSoftCapRatio: this.settings.defaultSoftCapRatio,
        actor,
        now,
      } as const;
      const { events } = await executeInTransaction(uow.tx, this.quotaSettings, tenantId, command, { metadata: { tenantId, actor } });
      // SetQuota always records its replacement (decideQuotaSettings).
      const quota = (events[0] as QuotaSettingsReplaced).quota;
      return { quota, counters: await uow.windows(tenantId, this.currentKeys(now)) };
    });
    return { quota: view.quota, windows: this.standings(tenantId, view.counters, view.quota) };
  }

  /** GetUsageSummary: totals of the day or month containing `at`, with its window. */
  async usageSummary(
    tenantId: string,
    period: PeriodKind,
    at: Date | undefined,
    plan: TenantPlan,
  ): Promise<{ start: Date; end: Date; totals: UsageTotals; window: WindowStanding }> {
    const start = periodStart(period, at ?? this.clock());
    const end = periodEnd(period, start);
    const [totals, counters, custom] = await Promise.all([
      this.store.usageTotals(tenantId, start, end),
      this.store.readWindows(tenantId, [{ period, periodStart: start }]),
      this.store.customQuota(tenantId),
    ]);
    const quota = this.effective(custom, plan);
    return { start, end, totals, window: windowStanding(counters[0] as WindowCounters, quota) };
  }

  /** GetUsageHistory: one entry per day of [first, last] (zeros for quiet days) and the sum. */
  async usageHistory(
    tenantId: string,
    days: readonly Date[],
  ): Promise<{ days: Array<{ date: string; totals: UsageTotals }>; totals: UsageTotals }> {
    const first = days[0];
    const last = days[days.length - 1];
    if (!first || !last) throw domainError("INVALID_ARGUMENT", "the range has no days", { field: "start_date" });
    const to = periodEnd("day", last);
    const [byDay, totals] = await Promise.all([this.store.dailyUsage(tenantId, first, to), this.store.usageTotals(tenantId, first, to)]);
    return { days: days.map((d) => ({ date: isoDate(d), totals: byDay.get(isoDate(d)) ?? ZERO_TOTALS })), totals };
  }
}

/** A change to a tenant's plan or run-allowance overrides (from auth events). */
export interface TenantPlanChange {
  tenantId: string;
  /** Undefined: unchanged. */
  plan?: PlanName | undefined;
  /** Undefined: unchanged. */
  overrides?: { monthlyRunAllowance: number | undefined; unlimitedRuns: boolean } | undefined;
}

/** Totals of a day without usage. */
export const ZERO_TOTALS: UsageTotals = Object.freeze({
  runsCompleted: 0n,
  runsFailed: 0n,
  runUnits: 0,
  cpuSeconds: 0,
  gpuSeconds: 0,
  toolCalls: 0n,
  inputTokens: 0n,
  outputTokens: 0n,
});
