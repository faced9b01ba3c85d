import { fromJson, type JsonObject, type JsonValue, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import jsonata from "jsonata";
import type { Logger } from "pino";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import {
  type DestinationConfig,
  DestinationConfigSchema,
  RestAuth,
  SqlEngine,
  type Target,
} from "../../../gen/nexus/integration/v1/resources_pb.js";
import type { Connectors } from "../connector-bridge.js";
import { ConnectorError, type SqlConnection, type SqlDestination } from "../connectors/ports.js";
import { sqlWriteOf } from "../domain/definition.js";

/** Destination kinds. */
export type DestinationKindName = "rest" | "sql" | "nats" | "corpus";

/** A destination as stored: configuration without secrets, the secret opened only when used. */
export interface DestinationRecord {
  id: string;
  tenantId: string;
  name: string;
  kind: DestinationKindName;
  /** Proto JSON of DestinationConfig with the secret fields empty. */
  config: JsonValue;
  /** The secret (password, token, API key), opened from the keyring; "" when none. */
  secret: string;
}

/** The kind of a destination configuration. */
export function kindOf(config: DestinationConfig): DestinationKindName {
  const c = config.kind.case;
  if (!c) throw new Error("destination config without kind");
  return c;
}

/** Splits a configuration into what is stored in the clear and the secret. */
export function splitSecret(config: DestinationConfig): { config: JsonValue; secret: string } {
  const json = toJson(DestinationConfigSchema, config) as JsonObject;
  const k = config.kind;
  let secret = "";
  if (k.case === "rest") secret = k.value.secret;
  if (k.case === "sql") secret = k.value.password;
  if (k.case === "corpus") secret = k.value.apiKey;
  const inner = json[k.case ?? ""] as JsonObject | undefined;
  if (inner) {
    delete inner.secret;
    delete inner.password;
    delete inner.apiKey;
  }
  return { config: json, secret };
}

/** Result of one delivery. */
export interface DeliveryResult {
  /** Summary for the execution log (rows, HTTP status). */
  detail: Record<string, JsonValue>;
  /** What the destination answered (REST JSON body, selected rows) for sequential steps. */
  output?: unknown;
}

/** Result of a connection test. */
export interface TestResult {
  ok: boolean;
  latencyMs: number;
  serverVersion: string;
  error: string;
}

/** The longest a connection test takes. */
const TEST_LIMIT_MS = 8_000;

const DEFAULT_RETRY_STATUS = (status: number) => status === 408 || status === 425 || status === 429 || status >= 500;

/** Variables every expression sees: `$messageId` (the message's id), `$workflowId`. */
export type ExpressionBindings = { messageId?: string; workflowId?: string };

/** Evaluates an optional JSONata expression against the input (empty: the input itself). */
export async function evaluate(expression: string, input: unknown, bindings: ExpressionBindings = {}): Promise<unknown> {
  if (expression === "") return input;
  try {
    return await jsonata(expression).evaluate(input, bindings);
  } catch (err) {
    throw new ConnectorError("MAPPING_FAILED", `expression failed: ${(err as Error).message}`);
  }
}

/** Options of {@link createDestinationDrivers}. */
export interface DestinationDriversOptions {
  logger: Logger;
  connectors: () => Promise<Connectors>;
  /** NATS servers for NATS destinations (undefined: NATS destinations are unavailable). */
  natsServers?: readonly string[] | undefined;
  /** Transport to the ingestion service (corpus destinations). */
  ingestion: () => Transport;
}

/** Delivers to every kind of destination; keeps one SQL pool per destination and one NATS connection. */
export interface DestinationDrivers {
  deliver(
    dest: DestinationRecord,
    target: Target,
    input: unknown,
    opts: { idempotencyKey: string; signal?: AbortSignal; bindings?: ExpressionBindings },
  ): Promise<DeliveryResult>;
  /** Tries a connection; answers within 8 s (or when `signal` aborts) with the outcome, never throws. */
  test(kind: DestinationKindName, config: DestinationConfig, secret: string, signal?: AbortSignal): Promise<TestResult>;
  listTables(dest: DestinationRecord): Promise<{ schema: string; name: string }[]>;
  listColumns(dest: DestinationRecord, table: string): Promise<{ name: string; type: string; nullable: boolean; primaryKey: boolean }[]>;
  /** Drops a destination's pool (deleted or changed). */
  forget(destinationId: string): Promise<void>;
  close(): Promise<void>;
}

function sqlConnection(config: DestinationConfig, secret: string): SqlConnection {
  if (config.kind.case !== "sql") throw new ConnectorError("INVALID_DESTINATION_CONFIG", "not a database destination");
  const c = config.kind.value;
  return {
    engine: c.engine === SqlEngine.MYSQL ? "mysql" : "postgres",
    host: c.host,
    port: c.port,
    database: c.database,
    user: c.user,
    ...(secret ? { password: secret } : {}),
    ...(c.ssl ? { ssl: true } : {}),
    poolMax: c.poolMax || 5,
  };
}

function restHeaders(config: DestinationConfig, secret: string): Headers {
  if (config.kind.case !== "rest") throw new ConnectorError("INVALID_DESTINATION_CONFIG", "not a REST destination");
  const c = config.kind.value;
  const headers = new Headers(c.headers);
  switch (c.auth) {
    case RestAuth.BEARER:
      headers.set("authorization", `Bearer ${secret}`);
      break;
    case RestAuth.API_KEY:
      headers.set(c.apiKeyHeader || "x-api-key", secret);
      break;
    case RestAuth.BASIC:
      headers.set("authorization", `Basic ${Buffer.from(`${c.username}:${secret}`).toString("base64")}`);
      break;
    case RestAuth.UNSPECIFIED:
      break;
    default: {
      const _exhaustive: never = c.auth;
      return _exhaustive;
    }
  }
  return headers;
}

/** Creates the drivers. */
export function createDestinationDrivers(options: DestinationDriversOptions): DestinationDrivers {
  const pools = new Map<string, SqlDestination>();
  let nats: Promise<NatsConnection> | undefined;

  async function pool(dest: DestinationRecord): Promise<SqlDestination> {
    let p = pools.get(dest.id);
    if (!p) {
      const c = await options.connectors();
      p = c.createSqlDestination(sqlConnection(fromJson(DestinationConfigSchema, dest.config), dest.secret), { logger: options.logger });
      pools.set(dest.id, p);
    }
    return p;
  }

  function natsConnection(): Promise<NatsConnection> {
    if (!options.natsServers)
      throw new ConnectorError("DESTINATION_UNAVAILABLE", "this process has no NATS server (NATS_URL) for NATS destinations");
    nats ??= connect({ servers: [...options.natsServers], name: "nexus-integration-destinations", maxReconnectAttempts: -1 }).catch(
      (err) => {
        nats = undefined;
        throw err;
      },
    );
    return nats;
  }

  async function rest(
    config: DestinationConfig,
    secret: string,
    target: Target,
    body: unknown,
    idempotencyKey: string,
    signal?: AbortSignal,
  ): Promise<DeliveryResult> {
    if (config.kind.case !== "rest") throw new ConnectorError("INVALID_DESTINATION_CONFIG", "not a REST destination");
    const c = config.kind.value;
    const method = c.method || "POST";
    const headers = restHeaders(config, secret);
    headers.set("idempotency-key", idempotencyKey);
    const hasBody = method !== "GET";
    if (hasBody) headers.set("content-type", "application/json");
    const timeout = AbortSignal.timeout(c.timeoutMs || 10_000);
    const started = performance.now();
    let res: Response;
    try {
      res = await fetch(`${c.url}${target.path}`, {
        method,
        headers,
        ...(hasBody ? { body: JSON.stringify(body ?? null) } : {}),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      const e = err as Error;
      const why =
        e.name === "TimeoutError" ? `no answer within ${c.timeoutMs || 10_000} ms` : (e.cause as Error | undefined)?.message || e.message;
      throw new ConnectorError("DESTINATION_UNAVAILABLE", `${method} ${new URL(c.url).host} failed: ${why}`, { cause: err });
    }
    const text = await res.text().catch(() => "");
    const latency = Math.round(performance.now() - started);
    if (!res.ok) {
      const retry = c.retryStatusCodes.length > 0 ? c.retryStatusCodes.includes(res.status) : DEFAULT_RETRY_STATUS(res.status);
      throw new ConnectorError(
        retry ? "DESTINATION_UNAVAILABLE" : "DESTINATION_REJECTED",
        `${method} answered HTTP ${res.status}: ${text.slice(0, 200)}`,
        {
          retryable: retry,
        },
      );
    }
    let output: unknown = text;
    try {
      output = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: kept as text */
    }
    return { detail: { httpStatus: res.status, latencyMs: latency }, output };
  }

  return {
    async deliver(dest, target, input, { idempotencyKey, signal, bindings }) {
      const config = fromJson(DestinationConfigSchema, dest.config);
      const body = await evaluate(target.transform, input, bindings);
      switch (dest.kind) {
        case "rest":
          return rest(config, dest.secret, target, body, idempotencyKey, signal);
        case "sql": {
          if (!target.sql) throw new ConnectorError("INVALID_DESTINATION_CONFIG", "a database target needs its table and mappings");
          if (typeof body !== "object" || body === null || Array.isArray(body))
            throw new ConnectorError("MAPPING_FAILED", "a database target needs a JSON object as input");
          const p = await pool(dest);
          const r = await p.execute(sqlWriteOf(target.sql), body as Record<string, unknown>, signal ? { signal } : {});
          return { detail: { rowCount: r.rowCount }, output: r.rows };
        }
        case "nats": {
          if (config.kind.case !== "nats") throw new ConnectorError("INVALID_DESTINATION_CONFIG", "not a NATS destination");
          let nc: NatsConnection;
          try {
            nc = await natsConnection();
            nc.publish(config.kind.value.subject, JSON.stringify(body ?? null));
            await nc.flush();
          } catch (err) {
            if (err instanceof ConnectorError) throw err;
            throw new ConnectorError("DESTINATION_UNAVAILABLE", `NATS publish failed: ${(err as Error).message}`, { cause: err });
          }
          return { detail: { subject: config.kind.value.subject } };
        }
        case "corpus": {
          if (config.kind.case !== "corpus") throw new ConnectorError("INVALID_DESTINATION_CONFIG", "not a corpus destination");
          const title = target.title ? String(await evaluate(target.title, input, bindings)) : "";
          const text = typeof body === "string" ? body : JSON.stringify(body, null, 2);
          const client = createClient(IngestionService, options.ingestion());
          try {
            const r = await client.ingestText(
              {
                corpusId: config.kind.value.corpusId,
                text,
                documentId: idempotencyKey,
                ...(title ? { filename: title.slice(0, 255) } : {}),
                metadata: { source: "integration" },
              },
              { headers: { authorization: `Bearer ${dest.secret}` }, timeoutMs: 30_000, ...(signal ? { signal } : {}) },
            );
            return { detail: { documentId: r.document?.id ?? idempotencyKey } };
          } catch (err) {
            const ce = ConnectError.from(err);
            const retry = [
              Code.Unavailable,
              Code.DeadlineExceeded,
              Code.ResourceExhausted,
              Code.Aborted,
              Code.Unknown,
              Code.Internal,
            ].includes(ce.code);
            throw new ConnectorError(
              retry ? "DESTINATION_UNAVAILABLE" : "DESTINATION_REJECTED",
              `corpus ingestion refused: ${ce.rawMessage}`,
              {
                retryable: retry,
              },
            );
          }
        }
        default: {
          const _exhaustive: never = dest.kind;
          return _exhaustive;
        }
      }
    },

    async test(kind, config, secret, signal) {
      const started = performance.now();
      const took = () => Math.round(performance.now() - started);
      // A test answers within TEST_LIMIT_MS whatever the configuration's own timeouts say.
      const limit = AbortSignal.any([AbortSignal.timeout(TEST_LIMIT_MS), ...(signal ? [signal] : [])]);
      const bounded = <T>(p: Promise<T>): Promise<T> =>
        Promise.race([
          p,
          new Promise<never>((_, reject) => {
            const fail = () => reject(new Error(`no answer within ${TEST_LIMIT_MS} ms`));
            if (limit.aborted) fail();
            else limit.addEventListener("abort", fail, { once: true });
          }),
        ]);
      try {
        switch (kind) {
          case "sql": {
            const c = await options.connectors();
            const d = c.createSqlDestination(
              { ...sqlConnection(config, secret), poolMax: 1, connectTimeoutMs: TEST_LIMIT_MS },
              { logger: options.logger },
            );
            try {
              const r = await bounded(d.test());
              // latency_ms is a uint32: the connector measures tenths of a millisecond.
              return { ok: true, latencyMs: Math.round(r.latencyMs), serverVersion: r.serverVersion, error: "" };
            } finally {
              await d.close();
            }
          }
          case "rest": {
            if (config.kind.case !== "rest") break;
            const res = await fetch(config.kind.value.url, {
              method: "HEAD",
              headers: restHeaders(config, secret),
              signal: AbortSignal.any([limit, AbortSignal.timeout(config.kind.value.timeoutMs || TEST_LIMIT_MS)]),
            });
            return {
              ok: res.status < 500,
              latencyMs: took(),
              serverVersion: `HTTP ${res.status}`,
              error: res.status < 500 ? "" : `HTTP ${res.status}`,
            };
          }
          case "nats": {
            const nc = await bounded(natsConnection());
            const rtt = await bounded(nc.rtt());
            return { ok: true, latencyMs: Math.round(rtt), serverVersion: nc.info?.version ?? "", error: "" };
          }
          case "corpus": {
            if (config.kind.case !== "corpus") break;
            return { ok: true, latencyMs: took(), serverVersion: "", error: "" };
          }
        }
        return { ok: false, latencyMs: took(), serverVersion: "", error: "unknown destination kind" };
      } catch (err) {
        const e = err as Error;
        return { ok: false, latencyMs: took(), serverVersion: "", error: (e.cause as Error | undefined)?.message || e.message };
      }
    },

    async listTables(dest) {
      return (await pool(dest)).listTables();
    },
    async listColumns(dest, table) {
      return (await pool(dest)).listColumns(table);
    },
    async forget(id) {
      const p = pools.get(id);
      pools.delete(id);
      await p?.close();
    },
    async close() {
      await Promise.allSettled([...pools.values()].map((p) => p.close()));
      pools.clear();
      const n = nats;
      nats = undefined;
      if (n) await (await n.catch(() => undefined))?.drain();
    },
  };
}
