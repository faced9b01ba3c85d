import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Modules' part of tenant offboarding: the tenant's modules (every version), their sealed
 * credentials and the marketplace listings it published. It keeps the revenue ledger
 * (`modules.revenue_ledger`): amounts and ids, no content, and the other party of each line
 * (creator or consumer) is another tenant whose accounts must still add up.
 */
export const modulesTenantData = tenantRowsDeleter(
  "modules",
  [{ table: "modules.credentials" }, { table: "modules.listings", where: "creator_tenant_id = $1" }, { table: "modules.modules" }],
  "modules.revenue_ledger (amounts and ids only; the other tenant of each line still needs it)",
);
