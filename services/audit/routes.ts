import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { AuditHandler } from "./audit-handler.js";

/** nexus.audit.v1.AuditService served by its handler. */
export function auditRoutes(handler: AuditHandler): ApiHandler {
  return handle(AuditService, handler);
}
