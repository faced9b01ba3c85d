import type { ConnectRouter } from "@connectrpc/connect";
import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import type { AuditHandler } from "./audit-handler.js";

/** Registers nexus.audit.v1.AuditService on a router. */
export function registerAuditRoutes(router: ConnectRouter, handler: AuditHandler): void {
  router.service(AuditService, handler);
}
