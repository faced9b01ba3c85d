import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Integration's part of tenant offboarding: its workflows (with every version), executions,
 * messages, destinations, MQTT sources and sender apps. Nothing is kept.
 */
export const integrationTenantData = tenantRowsDeleter("integration", [
  { table: "integration.executions" },
  { table: "integration.messages" },
  { table: "integration.workflows" },
  { table: "integration.destinations" },
  { table: "integration.mqtt_sources" },
  { table: "integration.sender_apps" },
]);
