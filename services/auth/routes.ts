import type { ConnectRouter } from "@connectrpc/connect";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import type { AuthServiceHandlers } from "./handlers.js";

/** Registers nexus.auth.v1.AuthService on a router. */
export function registerAuthRoutes(router: ConnectRouter, handlers: AuthServiceHandlers): void {
  router.service(AuthService, handlers);
}
