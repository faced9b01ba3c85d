import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { type ApiHandler, handle } from "../../kernel/service/index.js";
import type { RetrievalHandler } from "./retrieval-handler.js";

/** nexus.retrieval.v1.RetrievalService served by its handler. */
export function retrievalRoutes(handler: RetrievalHandler): ApiHandler {
  return handle(RetrievalService, handler);
}
