import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { IntegrationHandler } from "./integration-handler.js";

/** nexus.integration.v1.IntegrationService served by its handler. */
export function integrationRoutes(handler: IntegrationHandler): ApiHandler {
  return handle(IntegrationService, handler as never);
}
