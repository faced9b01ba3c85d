import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { domainError } from "../../kernel/errors.js";
import type { TenantDirectory, TenantPlanRecord } from "../ports.js";
import { planFromProto } from "../proto-mapping.js";

/**
 * The tenant directory backed by AuthService.GetTenant, called with the caller's own
 * credentials (the incoming Authorization header is forwarded, so the auth service applies the
 * same permission table). Used only when metering's plan projection does not know the tenant
 * yet (its auth events are still on their way).
 */
export function createAuthTenantDirectory(transport: () => Transport): TenantDirectory {
  return {
    async lookup(tenantId, credentials): Promise<TenantPlanRecord | undefined> {
      const client = createClient(AuthService, transport());
      const headers = new Headers();
      if (credentials.authorization) headers.set("authorization", credentials.authorization);
      try {
        const { tenant } = await client.getTenant({ selector: { case: "tenantId", value: tenantId } }, { headers, timeoutMs: 5_000 });
        const plan = tenant ? planFromProto(tenant.plan) : undefined;
        if (!tenant || !plan) return undefined;
        const o = tenant.entitlementOverrides;
        return {
          tenantId,
          plan,
          overrideMonthlyRunAllowance: o?.monthlyRunAllowance !== undefined ? Number(o.monthlyRunAllowance) : undefined,
          overrideUnlimitedRuns: o?.unlimitedRuns ?? false,
        };
      } catch (err) {
        const ce = ConnectError.from(err);
        if (ce.code === Code.NotFound) return undefined;
        if (ce.code === Code.Unavailable || ce.code === Code.Unimplemented || ce.code === Code.DeadlineExceeded) {
          throw domainError(
            "DEPENDENCY_UNAVAILABLE",
            "the auth service could not be asked for the tenant's plan",
            { dependency: "auth" },
            { cause: err },
          );
        }
        throw ce;
      }
    },
  };
}
