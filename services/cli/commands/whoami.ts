import { parseArgs } from "node:util";
import { PrincipalKind, Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import { WhoAmIResponseSchema } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { Plan } from "../../../gen/nexus/auth/v1/tenant_pb.js";
import type { Command } from "../command.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";

/** `nexus whoami`: the principal of NEXUS_API_KEY. */
export const whoamiCommand: Command = {
  path: ["whoami"],
  summary: "Show who NEXUS_API_KEY belongs to: platform operator or tenant member, role, plan, features",
  usage: "nexus whoami [--url URL] [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true });
    const res = await clientFrom(values).auth.whoAmI({});
    if (values.json) {
      printJson(WhoAmIResponseSchema, res);
      return 0;
    }
    const p = res.principal;
    const k = res.apiKey;
    if (!p) return 1;
    const lines =
      p.kind === PrincipalKind.PLATFORM
        ? [`platform operator`, `  key:      ${p.keyId} (${p.name})`]
        : [
            `tenant member of ${p.tenantSlug} (${p.tenantId})`,
            `  key:      ${p.keyId} (${p.name})`,
            `  role:     ${Role[p.role]?.toLowerCase() ?? "?"}`,
            `  plan:     ${Plan[p.plan]?.toLowerCase() ?? "?"}`,
            `  features: ${
              (p.entitlements?.features ?? [])
                .filter((f) => f.enabled)
                .map((f) => f.key)
                .join(", ") || "(none)"
            }`,
            `  runs:     ${p.entitlements?.monthlyRunAllowance === undefined ? "unlimited" : `${p.entitlements.monthlyRunAllowance} per month`}`,
          ];
    if (k) lines.push(`  created:  ${when(k.createdAt)}`, `  expires:  ${when(k.expiresAt)}`);
    console.log(lines.join("\n"));
    return 0;
  },
};
