import { agentService } from "../agent/server.js";
import { auditService } from "../audit/server.js";
import { authService } from "../auth/server.js";
import { eventStoreService } from "../eventstore/server.js";
import type { ServiceName } from "../kernel/config.js";
import { hostedRoles, type ServiceDefinition } from "../kernel/service/index.js";
import { knowledgeService } from "../knowledge/server.js";
import { meteringService } from "../metering/server.js";
import { modulesService } from "../modules/server.js";

/**
 * Every service of Nexus, in mount order. A process hosts the services one of whose roles it
 * runs (`nexus serve --service <role>`, NEXUS_SERVICES; `nexus dev`: all): auth; metering with
 * audit and the event store API (both deployed in the metering role); knowledge as ingestion and/or retrieval; agent;
 * modules.
 */
export const SERVICES: readonly ServiceDefinition[] = [
  authService,
  meteringService,
  auditService,
  eventStoreService,
  knowledgeService,
  agentService,
  modulesService,
];

/** The services a process running `roles` hosts, in mount order. */
export function servicesFor(roles: readonly ServiceName[]): ServiceDefinition[] {
  return SERVICES.filter((s) => hostedRoles(s, roles).length > 0);
}
