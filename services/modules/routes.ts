import { ModulesService } from "../../gen/nexus/modules/v1/modules_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { ModulesHandler } from "./modules-handler.js";

/** nexus.modules.v1.ModulesService served by its handler. */
export function modulesRoutes(handler: ModulesHandler): ApiHandler {
  return handle(ModulesService, handler);
}
