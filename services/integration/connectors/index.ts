/**
 * The connector library of the integration service (docs/integration-connectors.md): field
 * mappings, SQL destinations (PostgreSQL, MySQL/MariaDB) and MQTT sources. The service imports
 * from here; the types are in ports.ts.
 */
export { type ApplyMappingsOptions, applyMappings, FIELD_TYPES, NULL_STRATEGIES, readPath, validateMappings } from "./mapping.js";
export {
  isMalformedPayload,
  MalformedPayload,
  MQTT_CLOSE_GRACE_MS,
  MQTT_RECONNECT_MS,
  MQTT_SESSION_EXPIRY_S,
  type MqttSourceDeps,
  mqttMessageId,
  parsePayload,
  startMqttSource,
  validateMqttSourceConfig,
} from "./mqtt/index.js";
export * from "./ports.js";
export { createSqlDestination, SELECT_LIMIT, type SqlDestinationDeps, validateSqlConnection, validateSqlWrite } from "./sql/index.js";
