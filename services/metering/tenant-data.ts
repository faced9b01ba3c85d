import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Metering's part of tenant offboarding: every usage record, quota, quota window,
 * reservation, soft-cap notice and the tenant's plan copy. Nothing is kept: export what
 * billing needs (`nexus usage`, the billing webhook) before offboarding.
 */
export const meteringTenantData = tenantRowsDeleter("metering", [
  { table: "metering.reservations" },
  { table: "metering.usage_records" },
  { table: "metering.quota_windows" },
  { table: "metering.soft_cap_notices" },
  { table: "metering.quotas" },
  { table: "metering.tenant_plans" },
]);
