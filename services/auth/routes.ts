import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { AuthServiceHandlers } from "./handlers.js";

/** nexus.auth.v1.AuthService served by its handlers. */
export function authRoutes(handlers: AuthServiceHandlers): ApiHandler {
  return handle(AuthService, handlers);
}
