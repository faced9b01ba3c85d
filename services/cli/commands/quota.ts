import { parseArgs } from "node:util";
import { GetQuotaResponseSchema, SetQuotaResponseSchema } from "../../../gen/nexus/metering/v1/metering_service_pb.js";
import { HardCapMode, type Quota, QuotaSource, type QuotaWindow } from "../../../gen/nexus/metering/v1/quota_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";
import { windowLines } from "./usage.js";

const limit = (v: bigint | number | undefined) => (v === undefined ? "no limit" : String(v));

function printQuota(quota: Quota | undefined, windows: QuotaWindow[]): void {
  if (quota) {
    const l = quota.limits;
    console.log(
      `tenant ${quota.tenantId} — ${quota.source === QuotaSource.CUSTOM ? `custom (set ${when(quota.updatedAt)})` : "plan defaults"}`,
    );
    console.log(`  daily runs         ${limit(l?.dailyRuns)}`);
    console.log(`  monthly runs       ${limit(l?.monthlyRuns)}`);
    console.log(`  daily run units    ${limit(l?.dailyRunUnits)}`);
    console.log(`  monthly run units  ${limit(l?.monthlyRunUnits)}`);
    console.log(`  soft cap           ${Math.round(quota.softCapRatio * 100)}%`);
    console.log(
      `  at the hard cap    ${quota.hardCapMode === HardCapMode.OBSERVE ? "observe (let runs through, record overage)" : "enforce (refuse runs)"}`,
    );
  }
  for (const w of windows) for (const line of windowLines(w)) console.log(line);
}

function count(text: string | undefined, option: string): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^\d{1,15}$/.test(text)) throw new UsageError(`${option} must be a whole number`);
  return BigInt(text);
}

function amount(text: string | undefined, option: string): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !Number.isFinite(n)) throw new UsageError(`${option} must be a number >= 0`);
  return n;
}

/** `nexus quota get`. */
export const quotaGetCommand: Command = {
  path: ["quota", "get"],
  summary: "Show a tenant's quota settings and current day and month windows",
  usage: "nexus quota get [--tenant ID|SLUG] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS, tenant: { type: "string" } }, strict: true });
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const res = await client.metering.getQuota({ tenantId });
    if (values.json) {
      printJson(GetQuotaResponseSchema, res);
      return 0;
    }
    printQuota(res.quota, res.windows);
    return 0;
  },
};

/** `nexus quota set`. */
export const quotaSetCommand: Command = {
  path: ["quota", "set"],
  summary: "Replace a tenant's quota settings; omitted limits fall back to the plan (platform key)",
  usage:
    "nexus quota set --tenant ID|SLUG [--daily-runs N] [--monthly-runs N] [--daily-run-units X] [--monthly-run-units X] [--soft-cap 0.8] [--mode enforce|observe] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        tenant: { type: "string" },
        "daily-runs": { type: "string" },
        "monthly-runs": { type: "string" },
        "daily-run-units": { type: "string" },
        "monthly-run-units": { type: "string" },
        "soft-cap": { type: "string" },
        mode: { type: "string" },
      },
      strict: true,
    });
    if (!values.tenant) throw new UsageError("--tenant is required");
    const mode = (values.mode ?? "enforce").toLowerCase();
    if (mode !== "enforce" && mode !== "observe") throw new UsageError("--mode must be enforce or observe");
    const softCap = amount(values["soft-cap"], "--soft-cap");
    if (softCap !== undefined && (softCap <= 0 || softCap > 1)) throw new UsageError("--soft-cap must be greater than 0 and at most 1");
    const client = clientFrom(values);
    const tenantId = await resolveTenantId(client, values.tenant);
    const dailyRunsLimit = count(values["daily-runs"], "--daily-runs");
    const monthlyRunsLimit = count(values["monthly-runs"], "--monthly-runs");
    const dailyRunUnitsLimit = amount(values["daily-run-units"], "--daily-run-units");
    const monthlyRunUnitsLimit = amount(values["monthly-run-units"], "--monthly-run-units");
    const res = await client.metering.setQuota({
      tenantId,
      ...(dailyRunsLimit !== undefined ? { dailyRunsLimit } : {}),
      ...(monthlyRunsLimit !== undefined ? { monthlyRunsLimit } : {}),
      ...(dailyRunUnitsLimit !== undefined ? { dailyRunUnitsLimit } : {}),
      ...(monthlyRunUnitsLimit !== undefined ? { monthlyRunUnitsLimit } : {}),
      ...(softCap !== undefined ? { softCapRatio: softCap } : {}),
      hardCapMode: mode === "observe" ? HardCapMode.OBSERVE : HardCapMode.ENFORCE,
    });
    if (values.json) {
      printJson(SetQuotaResponseSchema, res);
      return 0;
    }
    printQuota(res.quota, res.windows);
    return 0;
  },
};

/** The quota commands, in help order. */
export const quotaCommands: readonly Command[] = [quotaGetCommand, quotaSetCommand];
