import { parseArgs } from "node:util";
import {
  GetUsageHistoryResponseSchema,
  GetUsageSummaryResponseSchema,
  type UsageTotals,
} from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { Period, type QuotaWindow } from "../../../gen/nexus/metering/v1/quota_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";

const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** "12 / 100 (3 in flight)", "12 (no limit)". */
export function usedOf(used: bigint | number, limit: bigint | number | undefined, reserved?: bigint): string {
  const flight = reserved ? ` (${reserved} in flight)` : "";
  return limit === undefined ? `${used}${flight} (no limit)` : `${used} / ${limit}${flight}`;
}

/** Lines describing a quota window, for people. */
export function windowLines(w: QuotaWindow | undefined): string[] {
  if (!w) return [];
  const name = w.period === Period.DAY ? "day" : "month";
  const flags = [w.softCapReached ? "soft cap reached" : "", w.hardCapReached ? "HARD CAP REACHED" : ""].filter(Boolean).join(", ");
  return [
    `${name} ${when(w.periodStart).slice(0, 10)} (resets ${when(w.resetsAt)})${flags ? ` — ${flags}` : ""}`,
    `  runs       ${usedOf(w.runsUsed, w.runsLimit, w.runsReserved)}`,
    `  run units  ${usedOf(w.runUnitsUsed, w.runUnitsLimit)}`,
  ];
}

function totalsRow(label: string, t: UsageTotals | undefined): string[] {
  return [
    label,
    String(t?.runsCompleted ?? 0n),
    String(t?.runsFailed ?? 0n),
    (t?.runUnits ?? 0).toFixed(3),
    (t?.cpuSeconds ?? 0).toFixed(1),
    (t?.gpuSeconds ?? 0).toFixed(1),
    String(t?.toolCalls ?? 0n),
    String(t?.inputTokens ?? 0n),
    String(t?.outputTokens ?? 0n),
  ];
}

const TOTAL_HEADERS = ["", "RUNS", "FAILED", "RUN UNITS", "CPU S", "GPU S", "TOOL CALLS", "TOKENS IN", "TOKENS OUT"];

/** `nexus usage`: this month's (or day's) usage and quota standing. */
export const usageCommand: Command = {
  path: ["usage"],
  summary: "Show usage and quota standing of the current month or day (tenant admin, or platform key with --tenant)",
  usage: "nexus usage [--period month|day] [--date YYYY-MM-DD] [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, period: { type: "string" }, date: { type: "string" }, tenant: { type: "string" } },
      strict: true,
    });
    const period = (values.period ?? "month").toLowerCase();
    if (period !== "month" && period !== "day") throw new UsageError("--period must be month or day");
    if (values.date !== undefined && !DATE.test(values.date)) throw new UsageError("--date must be YYYY-MM-DD");
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const res = await client.metering.getUsageSummary({
      tenantId,
      period: period === "day" ? Period.DAY : Period.MONTH,
      date: values.date ?? "",
    });
    if (values.json) {
      printJson(GetUsageSummaryResponseSchema, res);
      return 0;
    }
    console.log(`tenant ${res.tenantId}, ${period} from ${when(res.periodStart)} to ${when(res.periodEnd)}`);
    printTable(TOTAL_HEADERS, [totalsRow("total", res.totals)]);
    console.log("");
    for (const line of windowLines(res.quota)) console.log(line);
    return 0;
  },
};

/** `nexus usage history`: a daily series. */
export const usageHistoryCommand: Command = {
  path: ["usage", "history"],
  summary: "Show daily usage over a date range (at most 366 days)",
  usage: "nexus usage history --from YYYY-MM-DD --to YYYY-MM-DD [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, from: { type: "string" }, to: { type: "string" }, tenant: { type: "string" } },
      strict: true,
    });
    if (!values.from || !DATE.test(values.from) || !values.to || !DATE.test(values.to)) {
      throw new UsageError("--from and --to are required, as YYYY-MM-DD");
    }
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const res = await client.metering.getUsageHistory({ tenantId, startDate: values.from, endDate: values.to });
    if (values.json) {
      printJson(GetUsageHistoryResponseSchema, res);
      return 0;
    }
    printTable(
      TOTAL_HEADERS.map((h, i) => (i === 0 ? "DATE" : h)),
      [...res.days.map((d) => totalsRow(d.date, d.totals)), totalsRow("total", res.totals)],
    );
    return 0;
  },
};

/** The usage commands, in help order. */
export const usageCommands: readonly Command[] = [usageCommand, usageHistoryCommand];
