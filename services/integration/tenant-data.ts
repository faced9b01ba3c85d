import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Integration's part of tenant offboarding: its workflows (with every version), executions,
 * messages, destinations, MQTT sources, sender apps and edge agents (and its
 * suspension record: its edge tokens are gone with the agents). Nothing is kept.
 */
export const integrationTenantData = tenantRowsDeleter("integration", [
  { table: "integration.executions" },
  { table: "integration.messages" },
  { table: "integration.workflows" },
  { table: "integration.destinations" },
  { table: "integration.mqtt_sources" },
  { table: "integration.sender_apps" },
  { table: "integration.edge_agents" },
  { table: "integration.suspended_tenants" },
]);
