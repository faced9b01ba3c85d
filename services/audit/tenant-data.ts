import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Audit's part of tenant offboarding: only `audit.actors`, the names and roles of the tenant's
 * keys (the keys are gone). The audit trail itself (`audit.entries`) is KEPT: it is the
 * tamper-evident record of what was done in the tenant — the offboarding included — each
 * entry chained to the one before by hash, so deleting entries would break VerifyAuditChain
 * and destroy the evidence an auditor asks for. It ages out under the governance retention
 * policies (issue 15) instead, and a legal hold keeps it longer.
 */
export const auditTenantData = tenantRowsDeleter(
  "audit",
  [{ table: "audit.actors" }],
  "audit.entries (the hash-chained audit trail: evidence, including of the offboarding; retention policies age it out); audit.checkpoints (the signed checkpoints the chain verifies from after retention)",
);
