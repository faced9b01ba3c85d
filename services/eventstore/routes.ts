import { EventStoreService } from "../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { EventStoreHandler } from "./event-store-handler.js";

/** nexus.eventstore.v1.EventStoreService served by its handler. */
export function eventStoreRoutes(handler: EventStoreHandler): ApiHandler {
  return handle(EventStoreService, handler);
}
