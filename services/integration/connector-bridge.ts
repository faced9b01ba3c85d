import type { Logger } from "pino";
import {
  applyMappings,
  createSqlDestination,
  mqttMessageId,
  startMqttSource,
  validateMappings,
  validateMqttSourceConfig,
  validateSqlConnection,
} from "./connectors/index.js";
import type { FieldMapping, MqttMessage, MqttSource, MqttSourceConfig, SqlConnection, SqlDestination } from "./connectors/ports.js";

/**
 * The connector library (services/integration/connectors/, docs/integration-connectors.md) as
 * the service uses it: SQL destinations, the field mapping module and the MQTT source client.
 * One seam, so tests and the parts can hand in another implementation.
 */
export interface Connectors {
  createSqlDestination(conn: SqlConnection, options: { logger: Logger }): SqlDestination;
  applyMappings(mappings: FieldMapping[], input: Record<string, unknown>, opts?: { partial?: boolean }): Record<string, unknown>;
  validateMappings(mappings: FieldMapping[]): string[];
  validateSqlConnection(conn: SqlConnection): string[];
  validateMqttSourceConfig(config: MqttSourceConfig): string[];
  mqttMessageId(message: Pick<MqttMessage, "topic" | "raw">): string;
  startMqttSource(config: MqttSourceConfig, onMessage: (m: MqttMessage) => Promise<void>, options: { logger: Logger }): MqttSource;
}

const LIBRARY: Connectors = {
  createSqlDestination,
  applyMappings,
  validateMappings,
  validateSqlConnection,
  validateMqttSourceConfig,
  mqttMessageId,
  startMqttSource,
};

/** The connector library. */
export function connectors(): Promise<Connectors> {
  return Promise.resolve(LIBRARY);
}
