import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { GovernanceService } from "../../gen/nexus/governance/v1/governance_service_pb.js";
import { IdentityService } from "../../gen/nexus/identity/v1/identity_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { GovernanceServiceHandlers } from "./governance-handlers.js";
import type { AuthServiceHandlers } from "./handlers.js";
import type { IdentityServiceHandlers } from "./identity-handlers.js";

/** nexus.auth.v1.AuthService served by its handlers. */
export function authRoutes(handlers: AuthServiceHandlers): ApiHandler {
  return handle(AuthService, handlers);
}

/** nexus.identity.v1.IdentityService (people and identity providers) served by its handlers. */
export function identityRoutes(handlers: IdentityServiceHandlers): ApiHandler {
  return handle(IdentityService, handlers);
}

/** nexus.governance.v1.GovernanceService (legal holds, retention policies and reports) served by its handlers. */
export function governanceRoutes(handlers: GovernanceServiceHandlers): ApiHandler {
  return handle(GovernanceService, handlers);
}
