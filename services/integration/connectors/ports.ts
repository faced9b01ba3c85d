/**
 * The connector library's contract: what the integration service calls to write to SQL databases
 * and to receive MQTT messages. The adapters live beside this file (`sql/`, `mqtt/`, `mapping.ts`);
 * the service codes against these types only.
 */

/** Where a SQL destination connects. `password` is a secret: never logged, never in an error message. */
export type SqlConnection = {
  engine: "postgres" | "mysql";
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  ssl?: boolean;
  /** Most pooled connections (default 5). */
  poolMax?: number;
  /** How long connecting may take before the destination counts as unavailable (default 5000 ms). */
  connectTimeoutMs?: number;
};

/** Value types a mapping converts to. */
export type FieldType = "string" | "integer" | "number" | "boolean" | "timestamp" | "json";

/** What to do when a mapped source value is missing or null. */
export type NullStrategy = "skip" | "null" | "default";

/** One input field → one destination column. */
export type FieldMapping = {
  /** A dotted path into the input, e.g. `device.temp` (array indexes as `items.0.id`). */
  source: string;
  column: string;
  type?: FieldType;
  default?: unknown;
  nullStrategy?: NullStrategy;
};

/** One statement against one table, with its values taken from the input through the mappings. */
export type SqlWrite = {
  operation: "insert" | "upsert" | "update" | "delete" | "select";
  /** `name` or `schema.name`. */
  table: string;
  mappings: FieldMapping[];
  /** Columns identifying the row: the conflict target of upsert, the WHERE of update/delete/select. */
  keyColumns?: string[];
  /** Update/upsert only the columns whose source is present in the input. */
  partial?: boolean;
};

/** A SQL database a workflow writes to. One pool per destination; call `close()` when done. */
export type SqlDestination = {
  execute(
    write: SqlWrite,
    input: Record<string, unknown>,
    opts?: { signal?: AbortSignal },
  ): Promise<{ rowCount: number; rows?: Record<string, unknown>[] }>;
  /** Connection test before saving: round-trip latency and the server's version string. */
  test(): Promise<{ latencyMs: number; serverVersion: string }>;
  /** Schema browsing: base tables the user can see (system schemas left out). */
  listTables(): Promise<{ schema: string; name: string }[]>;
  listColumns(table: string): Promise<{ name: string; type: string; nullable: boolean; primaryKey: boolean }[]>;
  close(): Promise<void>;
};

/** Payload formats an MQTT source understands. */
export type MqttFormat = "json" | "csv" | "raw";

/** An MQTT subscription that feeds workflows. `password` is a secret. */
export type MqttSourceConfig = {
  /** `mqtt://host:1883`, `mqtts://…`, `ws://…`. */
  url: string;
  username?: string;
  password?: string;
  /** Fixed per source: the broker keeps the persistent session (and queued QoS 1/2 messages) under it. */
  clientId: string;
  /** Topic filters, wildcards `+` and `#` allowed. */
  topics: string[];
  qos: 0 | 1 | 2;
  format: MqttFormat;
};

/** One received message, handed to the source's `onMessage`. */
export type MqttMessage = {
  topic: string;
  payload: unknown;
  raw: Uint8Array;
  qos: 0 | 1 | 2;
  receivedAt: Date;
};

/** A running MQTT subscription. */
export type MqttSource = {
  /**
   * Stops the source. The broker keeps its session (and queues for it) unless `forgetSession`:
   * use that when the source is deleted for good.
   */
  close(opts?: { forgetSession?: boolean }): Promise<void>;
  /** `received` counts messages onMessage accepted; `malformed` those whose payload did not parse (handed over as MalformedPayload). */
  status(): { connected: boolean; subscribed: string[]; lastError?: string; received: number; malformed?: number };
};

/** Machine-readable reasons of a {@link ConnectorError}. */
export type ConnectorErrorReason =
  /** The server cannot be reached, timed out, is overloaded or hit a deadlock: retry later. */
  | "DESTINATION_UNAVAILABLE"
  /** The server refused the statement (constraint, type, unknown column): retrying will not help. */
  | "DESTINATION_REJECTED"
  /** The input does not fit the mappings (missing field, value that does not convert). */
  | "MAPPING_FAILED"
  /** The destination configuration itself is wrong (bad identifier, missing keys, bad credentials, …). */
  | "INVALID_DESTINATION_CONFIG"
  /** The MQTT source configuration is wrong (URL, topic filter, QoS, format). */
  | "INVALID_SOURCE_CONFIG";

/** Reasons that are worth retrying. */
const RETRYABLE: ReadonlySet<string> = new Set(["DESTINATION_UNAVAILABLE"]);

/**
 * The one error every connector throws. `retryable` tells the workflow engine whether to back off
 * and try again or to dead-letter at once; `reason` is UPPER_SNAKE for the execution log.
 * Messages never contain passwords.
 */
export class ConnectorError extends Error {
  readonly retryable: boolean;
  readonly reason: string;

  constructor(reason: ConnectorErrorReason | (string & {}), message: string, options?: { cause?: unknown; retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "ConnectorError";
    this.reason = reason;
    this.retryable = options?.retryable ?? RETRYABLE.has(reason);
  }
}
