import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { createIntegrationParts } from "./integration-parts.js";
import { integrationMigrations } from "./migrations.js";
import { integrationTenantData } from "./tenant-data.js";

/**
 * The integration service (`nexus.integration.v1.IntegrationService`): sender apps and MQTT
 * sources feed versioned workflows that deliver to databases, REST APIs, NATS subjects and
 * Nexus corpora (through the ingestion service), with retries, dead letters and an execution
 * log; `POST /ingress` and `POST /execute/<id>` for drop-in senders. docs/integration.md.
 */
export const integrationService = defineService({
  name: "integration",
  apis: [IntegrationService, EdgeService],
  migrations: [integrationMigrations],
  dataDeleters: [integrationTenantData],
  peers: ["ingestion"],
  build: (ctx) => createIntegrationParts(ctx),
});
