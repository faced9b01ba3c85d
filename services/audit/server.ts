import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { createAuditParts } from "./audit-parts.js";
import { auditMigrations } from "./migrations.js";
import { auditTenantData } from "./tenant-data.js";

/**
 * The audit service (`nexus.audit.v1.AuditService`): the hash-chained, append-only audit trail
 * built from every service's domain events. It is deployed in the metering role (the same
 * process as metering, `nexus serve --service metering`): both read the whole event stream and
 * neither calls the other.
 */
export const auditService = defineService({
  name: "audit",
  apis: [AuditService],
  roles: { metering: { apis: [AuditService] } },
  migrations: [auditMigrations],
  dataDeleters: [auditTenantData],
  build: (ctx) => createAuditParts(ctx),
});
