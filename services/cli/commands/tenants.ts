import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  CreateTenantResponseSchema,
  ListTenantsResponseSchema,
  ResumeTenantResponseSchema,
  SetPlanResponseSchema,
  SuspendTenantResponseSchema,
  UpdateTenantResponseSchema,
} from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { Plan, type Tenant, TenantStatus } from "../../../gen/nexus/auth/v1/tenant_pb.js";
import type { NexusClient } from "../../client/create-nexus-client.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";

const PLANS: Record<string, Plan> = { free: Plan.FREE, pro: Plan.PRO, enterprise: Plan.ENTERPRISE };

function planOf(name: string | undefined, option = "--plan"): Plan {
  const plan = PLANS[(name ?? "").toLowerCase()];
  if (plan === undefined) throw new UsageError(`${option} must be free, pro or enterprise`);
  return plan;
}

const planName = (p: Plan): string => Plan[p]?.toLowerCase() ?? "?";
const statusName = (s: TenantStatus): string => TenantStatus[s]?.toLowerCase() ?? "?";

function printTenants(tenants: Tenant[]): void {
  printTable(
    ["ID", "SLUG", "NAME", "PLAN", "STATUS", "CREATED"],
    tenants.map((t) => [t.id, t.slug, t.displayName, planName(t.plan), statusName(t.status), when(t.createdAt)]),
  );
}

/** The tenant id of an argument that is a slug or an id (slug first: both are DNS-label shaped). */
export async function resolveTenantId(client: NexusClient, ref: string): Promise<string> {
  try {
    return (await client.auth.getTenant({ selector: { case: "slug", value: ref } })).tenant?.id ?? ref;
  } catch (err) {
    if (err instanceof ConnectError && (err.code === Code.NotFound || err.code === Code.InvalidArgument)) return ref;
    throw err;
  }
}

/** `nexus tenants create`. */
export const tenantsCreateCommand: Command = {
  path: ["tenants", "create"],
  summary: "Create a tenant (platform key)",
  usage: 'nexus tenants create <slug> [--name "Display Name"] [--plan free|pro|enterprise] [--json]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, name: { type: "string" }, plan: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    const slug = positionals[0];
    if (positionals.length !== 1 || !slug) throw new UsageError("give the tenant's slug");
    const res = await clientFrom(values).auth.createTenant({ slug, displayName: values.name ?? slug, plan: planOf(values.plan ?? "free") });
    if (values.json) {
      printJson(CreateTenantResponseSchema, res);
      return 0;
    }
    printTenants(res.tenant ? [res.tenant] : []);
    return 0;
  },
};

/** `nexus tenants list`. */
export const tenantsListCommand: Command = {
  path: ["tenants", "list"],
  summary: "List tenants, oldest first (platform key)",
  usage: "nexus tenants list [--status active|suspended] [--plan free|pro|enterprise] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, status: { type: "string" }, plan: { type: "string" } },
      strict: true,
    });
    const status =
      values.status === undefined
        ? TenantStatus.UNSPECIFIED
        : values.status === "active"
          ? TenantStatus.ACTIVE
          : values.status === "suspended"
            ? TenantStatus.SUSPENDED
            : undefined;
    if (status === undefined) throw new UsageError("--status must be active or suspended");
    const client = clientFrom(values);
    const tenants: Tenant[] = [];
    let pageToken = "";
    do {
      const res = await client.auth.listTenants({
        pageSize: 200,
        pageToken,
        status,
        plan: values.plan ? planOf(values.plan) : Plan.UNSPECIFIED,
      });
      tenants.push(...res.tenants);
      pageToken = res.nextPageToken;
    } while (pageToken);
    if (values.json) {
      printJson(ListTenantsResponseSchema, create(ListTenantsResponseSchema, { tenants }));
      return 0;
    }
    if (tenants.length === 0) console.log("no tenants");
    else printTenants(tenants);
    return 0;
  },
};

/** `nexus tenants suspend`. */
export const tenantsSuspendCommand: Command = {
  path: ["tenants", "suspend"],
  summary: "Suspend a tenant: its keys stop working at once everywhere (platform key)",
  usage: "nexus tenants suspend <tenant id or slug> [--reason TEXT] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, reason: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the tenant's id or slug");
    const client = clientFrom(values);
    const res = await client.auth.suspendTenant({ tenantId: await resolveTenantId(client, positionals[0]), reason: values.reason ?? "" });
    if (values.json) {
      printJson(SuspendTenantResponseSchema, res);
      return 0;
    }
    printTenants(res.tenant ? [res.tenant] : []);
    return 0;
  },
};

/** `nexus tenants resume`. */
export const tenantsResumeCommand: Command = {
  path: ["tenants", "resume"],
  summary: "Resume a suspended tenant (platform key)",
  usage: "nexus tenants resume <tenant id or slug> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the tenant's id or slug");
    const client = clientFrom(values);
    const res = await client.auth.resumeTenant({ tenantId: await resolveTenantId(client, positionals[0]) });
    if (values.json) {
      printJson(ResumeTenantResponseSchema, res);
      return 0;
    }
    printTenants(res.tenant ? [res.tenant] : []);
    return 0;
  },
};

/** `nexus tenants set-plan`. */
export const tenantsSetPlanCommand: Command = {
  path: ["tenants", "set-plan"],
  summary: "Change a tenant's plan (platform key; tenants never change their own plan)",
  usage: "nexus tenants set-plan <tenant id or slug> <free|pro|enterprise> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 2 || !positionals[0]) throw new UsageError("give the tenant's id or slug and the plan");
    const plan = planOf(positionals[1], "the plan");
    const client = clientFrom(values);
    const res = await client.auth.setPlan({ tenantId: await resolveTenantId(client, positionals[0]), plan });
    if (values.json) {
      printJson(SetPlanResponseSchema, res);
      return 0;
    }
    printTenants(res.tenant ? [res.tenant] : []);
    return 0;
  },
};

/** `nexus tenants update`. */
export const tenantsUpdateCommand: Command = {
  path: ["tenants", "update"],
  summary: "Change a tenant's display name (platform key)",
  usage: 'nexus tenants update <tenant id or slug> --name "Display Name" [--json]',
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, name: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give the tenant's id or slug");
    if (values.name === undefined) throw new UsageError("give the new display name with --name");
    const client = clientFrom(values);
    const res = await client.auth.updateTenant({
      tenantId: await resolveTenantId(client, positionals[0]),
      displayName: values.name,
      updateMask: { paths: ["display_name"] },
    });
    if (values.json) {
      printJson(UpdateTenantResponseSchema, res);
      return 0;
    }
    printTenants(res.tenant ? [res.tenant] : []);
    return 0;
  },
};

/** Every `nexus tenants …` command. */
export const tenantsCommands: readonly Command[] = [
  tenantsCreateCommand,
  tenantsListCommand,
  tenantsSuspendCommand,
  tenantsResumeCommand,
  tenantsSetPlanCommand,
  tenantsUpdateCommand,
];
