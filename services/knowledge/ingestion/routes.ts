import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { type ApiHandler, handle } from "../../kernel/service/index.js";
import type { IngestionHandler } from "./ingestion-handler.js";

/** nexus.ingestion.v1.IngestionService served by its handler. */
export function ingestionRoutes(handler: IngestionHandler): ApiHandler {
  return handle(IngestionService, handler);
}
