import type { Logger } from "pino";
import type { FieldMapping, MqttMessage, MqttSource, MqttSourceConfig, SqlConnection, SqlDestination } from "./connectors/ports.js";

/**
 * The connector library (services/integration/connectors/, built beside this service) reached
 * through its entry points, loaded on first use: the SQL destinations, the field mapping module
 * and the MQTT source client.
 */
export interface Connectors {
  createSqlDestination(conn: SqlConnection, options?: { logger?: Logger }): SqlDestination;
  applyMappings(mappings: FieldMapping[], input: Record<string, unknown>, opts?: { partial?: boolean }): Record<string, unknown>;
  validateMappings(mappings: FieldMapping[]): string[];
  startMqttSource(config: MqttSourceConfig, onMessage: (m: MqttMessage) => Promise<void>, options: { logger: Logger }): MqttSource;
}

// Module paths as values: the library lands in its own branch, this service only needs its entry points.
const SQL_MODULE = "./connectors/sql/index.js";
const MAPPING_MODULE = "./connectors/mapping.js";
const MQTT_MODULE = "./connectors/mqtt/index.js";

let loaded: Promise<Connectors> | undefined;

/**
 * The connector library (loaded once). The MQTT client is loaded separately, at the first MQTT
 * source, so a process without MQTT sources never needs it.
 */
export function connectors(): Promise<Connectors> {
  loaded ??= (async () => {
    const [sql, mapping] = await Promise.all([import(SQL_MODULE), import(MAPPING_MODULE)]);
    let mqtt: Promise<{ startMqttSource: Connectors["startMqttSource"] }> | undefined;
    return {
      createSqlDestination: sql.createSqlDestination,
      applyMappings: mapping.applyMappings,
      validateMappings: mapping.validateMappings,
      startMqttSource(config, onMessage, options) {
        // Started asynchronously: the source reports "not connected" until the client is loaded.
        let source: ReturnType<Connectors["startMqttSource"]> | undefined;
        let closed = false;
        let loadError: string | undefined;
        mqtt ??= import(MQTT_MODULE);
        mqtt.then(
          (m) => {
            if (!closed) source = m.startMqttSource(config, onMessage, options);
          },
          (err: Error) => {
            loadError = `MQTT client unavailable: ${err.message}`;
            options.logger.error({ err }, "MQTT client could not be loaded");
          },
        );
        return {
          async close() {
            closed = true;
            await source?.close();
          },
          status() {
            return source?.status() ?? { connected: false, subscribed: [], received: 0, ...(loadError ? { lastError: loadError } : {}) };
          },
        };
      },
    } as Connectors;
  })();
  return loaded;
}
