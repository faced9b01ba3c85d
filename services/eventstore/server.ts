import { EventStoreService } from "../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { createEventStoreParts } from "./eventstore-parts.js";

/**
 * The event store API (`nexus.eventstore.v1.EventStoreService`): a tenant's live change feed
 * (WatchEvents) and the catalogue of event types with their descriptors (ListEventTypes). It
 * owns no schema (it reads `platform.events`) and is deployed in the metering role, like
 * audit: the process that already reads the whole event stream.
 */
export const eventStoreService = defineService({
  name: "eventstore",
  apis: [EventStoreService],
  roles: { metering: { apis: [EventStoreService] } },
  migrations: [],
  build: (ctx) => createEventStoreParts(ctx),
});
