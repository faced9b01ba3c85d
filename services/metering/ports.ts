import type { PlanName } from "../kernel/context.js";
import type { Tx } from "../kernel/db/ports.js";
import type { CustomQuota, QuotaMetric, QuotaSettings, WindowCounters, WindowDelta } from "./domain/quota.js";
import type { PeriodKind } from "./domain/quota-period.js";
import type { Reservation, ReservationState } from "./domain/reservation.js";

/** How a metered run ended. */
export type RunOutcome = "completed" | "failed" | "cancelled";

/** One run's usage record (one per run, whatever happens to its events). */
export interface UsageRecord {
  id: string;
  tenantId: string;
  requestId: string;
  sourceEventId: string;
  reservationId: string | undefined;
  plan: PlanName;
  outcome: RunOutcome;
  runUnits: number;
  cpuSeconds: number;
  gpuSeconds: number;
  toolCalls: number;
  inputTokens: bigint;
  outputTokens: bigint;
  tierMultiplier: number;
  toolCallOverhead: number;
  /** UTC midnight of the day the usage counts for. */
  usageDate: Date;
  recordedAt: Date;
}

/** Sums over usage records (GetUsageSummary, GetUsageHistory). */
export interface UsageTotals {
  runsCompleted: bigint;
  runsFailed: bigint;
  runUnits: number;
  cpuSeconds: number;
  gpuSeconds: number;
  toolCalls: bigint;
  inputTokens: bigint;
  outputTokens: bigint;
}

/** A tenant's plan and run-allowance overrides, as projected from auth events. */
export interface TenantPlanRecord {
  tenantId: string;
  plan: PlanName;
  overrideMonthlyRunAllowance: number | undefined;
  overrideUnlimitedRuns: boolean;
}

/** What admitting a run reads (see {@link QuotaUnitOfWork.admissionState}). */
export interface AdmissionState {
  /** The tenant's reservations still `reserved` whose TTL ended. */
  due: Reservation[];
  custom: CustomQuota | undefined;
  /** The windows of the keys asked for, in their order (created empty when missing). */
  windows: WindowCounters[];
  /** The reservation already made for the request id, if any. */
  existing: Reservation | undefined;
}

/**
 * The metering state inside one open transaction. Methods that change quota counters must be
 * called only after {@link QuotaUnitOfWork.lockTenant} for that tenant in the same transaction.
 */
export interface QuotaUnitOfWork {
  /** The open transaction (commands and facts are recorded in it: the outbox). */
  readonly tx: Tx;
  /** Serialises every quota change of one tenant until the transaction ends. */
  lockTenant(tenantId: string): Promise<void>;
  /**
   * Everything CheckQuota reads, in one statement (a run waits for CheckQuota before its
   * first token): due reservations, custom quota, the windows (created empty when missing)
   * and the reservation of `requestId`. The same as dueReservations, customQuota, windows and
   * reservationByRequest one after the other, as long as nothing is due.
   */
  admissionState(
    tenantId: string,
    requestId: string,
    keys: ReadonlyArray<{ period: PeriodKind; periodStart: Date }>,
    now: Date,
  ): Promise<AdmissionState>;
  /**
   * Inserts a reservation and adds the deltas to its day and month windows (which must exist,
   * see admissionState) in one statement; returns those windows afterwards, day first.
   */
  reserve(r: Reservation, deltas: Readonly<Record<PeriodKind, WindowDelta>>): Promise<[WindowCounters, WindowCounters]>;
  customQuota(tenantId: string): Promise<CustomQuota | undefined>;
  /** The custom settings with who stored them (undefined: the plan's defaults apply). */
  quotaSettings(tenantId: string): Promise<QuotaSettings | undefined>;
  saveCustomQuota(tenantId: string, quota: CustomQuota, updatedBy: string): Promise<void>;
  /** The windows (created empty when missing). */
  windows(tenantId: string, keys: ReadonlyArray<{ period: PeriodKind; periodStart: Date }>): Promise<WindowCounters[]>;
  addToWindow(tenantId: string, period: PeriodKind, periodStart: Date, delta: WindowDelta): Promise<WindowCounters>;
  reservation(id: string): Promise<Reservation | undefined>;
  reservationByRequest(tenantId: string, requestId: string): Promise<Reservation | undefined>;
  updateReservation(id: string, state: ReservationState, settledAt: Date, releaseReason?: string): Promise<void>;
  /** This tenant's reservations still `reserved` whose TTL ended at `now`. */
  dueReservations(tenantId: string, now: Date): Promise<Reservation[]>;
  /** True the first time a (tenant, period, start, metric) soft cap is noted. */
  noteSoftCap(tenantId: string, period: PeriodKind, periodStart: Date, metric: QuotaMetric, at: Date): Promise<boolean>;
  /** False when a record for the run (request id or source event) already exists. */
  insertUsageRecord(record: UsageRecord): Promise<boolean>;
  saveTenantPlan(record: TenantPlanRecord): Promise<void>;
  tenantPlan(tenantId: string): Promise<TenantPlanRecord | undefined>;
}

/** Metering's storage: transactions for changes, plain reads for queries. */
export interface MeteringStore {
  /** Runs `fn` in a new transaction. */
  transaction<R>(fn: (uow: QuotaUnitOfWork) => Promise<R>): Promise<R>;
  /** A unit of work on a transaction someone else opened (event consumers). */
  within(tx: Tx): QuotaUnitOfWork;
  customQuota(tenantId: string): Promise<CustomQuota | undefined>;
  /** The windows as stored (zeros for missing ones); never creates rows. */
  readWindows(tenantId: string, keys: ReadonlyArray<{ period: PeriodKind; periodStart: Date }>): Promise<WindowCounters[]>;
  tenantPlan(tenantId: string): Promise<TenantPlanRecord | undefined>;
  reservation(id: string): Promise<Reservation | undefined>;
  /** Totals of records with usage_date in [from, to). */
  usageTotals(tenantId: string, from: Date, to: Date): Promise<UsageTotals>;
  /** Totals per day with usage in [from, to); days without records are absent. */
  dailyUsage(tenantId: string, from: Date, to: Date): Promise<Map<string, UsageTotals>>;
  /** Tenants holding reservations whose TTL has ended (for the expiry sweep). */
  tenantsWithDueReservations(now: Date, limit: number): Promise<string[]>;
}

/**
 * Where metering learns a tenant's plan when the caller's principal does not carry it
 * (platform operators acting on a tenant): the auth service. Undefined result: no such tenant.
 */
export interface TenantDirectory {
  lookup(tenantId: string, credentials: { authorization?: string | undefined }): Promise<TenantPlanRecord | undefined>;
}
