/**
 * Nexus configuration: the ONE place that reads environment variables.
 *
 * One table ({@link VARIABLES}) drives parsing, defaults, validation and documentation; adding a
 * variable is one entry there (its key becomes a field of {@link NexusConfig}). Values are
 * validated at start-up: a bad value throws a {@link ConfigError} naming the variable, the value
 * (unless it is secret) and what is expected. An empty value counts as unset.
 *
 * The README's Configuration table is generated from the same table (`npm run docs:readme`),
 * so this comment does not repeat it.
 */

import { isIP } from "node:net";
import { MasterKeyFormatError, type MasterKeys, parseMasterKeys } from "./keyring/master-keys.js";
import { DEFAULT_RATE_LIMITS_SPEC, parseRateLimits } from "./limits/rate-limits.js";

/** Thrown by {@link loadConfig} when one or more variables hold a bad value. */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** One entry per bad variable. */
  readonly problems: readonly ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    const lines = problems.map((p) => p.message);
    super(lines.length === 1 ? `invalid configuration: ${lines[0]}` : `invalid configuration:\n${lines.map((l) => `  - ${l}`).join("\n")}`);
    this.problems = Object.freeze([...problems]);
  }

  /** Names of the variables that failed validation. */
  get variables(): string[] {
    return this.problems.map((p) => p.variable);
  }
}

/** One invalid variable: its name and a message naming value and expectation. */
export interface ConfigProblem {
  variable: string;
  message: string;
}

/** Signals that a raw value does not fit; `expected` says what would. */
class InvalidValue extends Error {
  constructor(readonly expected: string) {
    super(expected);
  }
}

interface VariableSpec<T> {
  /** Environment variable name. */
  name: string;
  /** Raw default, or undefined when "unset" is a meaningful state. */
  default: string | undefined;
  /** How the default reads in docs when there is no raw default. */
  unsetMeaning?: string;
  description: string;
  /** Never echo the value in errors (URLs may carry passwords). */
  secret?: boolean;
  /** Parses a non-empty raw value; throws InvalidValue. */
  parse(raw: string): T;
}

function variable<T>(spec: VariableSpec<T>): VariableSpec<T> {
  return spec;
}

// ---- parsers (each says what it expects, for the error message) ----

function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new InvalidValue(`an integer from ${min} to ${max}`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidValue(`an integer from ${min} to ${max}`);
    return n;
  };
}

function boolean(raw: string): boolean {
  const v = raw.toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off"].includes(v)) return false;
  throw new InvalidValue("true or false (also 1/0, yes/no, on/off)");
}

function oneOf<const T extends string>(values: readonly T[]): (raw: string) => T {
  return (raw) => {
    const v = raw.toLowerCase();
    if ((values as readonly string[]).includes(v)) return v as T;
    throw new InvalidValue(`one of ${values.join(", ")}`);
  };
}

function host(raw: string): string {
  // Hostname, IPv4 or IPv6 literal; no scheme, port or path.
  if (/^[A-Za-z0-9.-]+$/.test(raw) || /^[0-9A-Fa-f:.]+$/.test(raw) || /^\[[0-9A-Fa-f:.]+\]$/.test(raw)) {
    return raw.replace(/^\[(.*)\]$/, "$1");
  }
  throw new InvalidValue("a host name or IP address without scheme or port (e.g. 0.0.0.0)");
}

function urlWith(protocols: readonly string[], what: string): (raw: string) => string {
  return (raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new InvalidValue(what);
    }
    if (!protocols.includes(u.protocol) || !u.hostname) throw new InvalidValue(what);
    return raw;
  };
}

function urlList(protocols: readonly string[], what: string): (raw: string) => string[] {
  const one = urlWith(protocols, what);
  return (raw) => {
    const parts = raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
    if (parts.length === 0) throw new InvalidValue(what);
    return parts.map(one);
  };
}

function path(raw: string): string {
  if (raw.includes("\0")) throw new InvalidValue("a file system path");
  return raw;
}

/** JetStream stream names: no spaces, dots, wildcards or path separators. */
function streamName(raw: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new InvalidValue("a JetStream stream name (letters, digits, _ and -; at most 64)");
  return raw;
}

function subjectToken(raw: string): string {
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(raw)) {
    throw new InvalidValue("NATS subject tokens separated by dots, without wildcards or spaces (e.g. nexus)");
  }
  return raw;
}

function nonEmptyName(raw: string): string {
  if (!/^[A-Za-z0-9._/-]{1,128}$/.test(raw)) throw new InvalidValue("a name of letters, digits, ., _, / and - (at most 128)");
  return raw;
}

/** An API key id as it appears in `nxs_<key id>_<secret>`. */
function bootstrapKeyId(raw: string): string {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(raw))
    throw new InvalidValue("a key id of letters, digits and dashes (at most 64), as in nxs_<key id>_<secret>");
  return raw;
}

/** A hex SHA-256 digest (64 hex characters), normalised to lower case. */
function sha256Hex(raw: string): string {
  const v = raw.split(/\s+/)[0]?.toLowerCase() ?? "";
  if (!/^[0-9a-f]{64}$/.test(v)) throw new InvalidValue("a hex SHA-256 digest (64 hex characters, as printed by sha256sum)");
  return v;
}

/** An embedding model name as servers spell them (e.g. text-embedding-3-small, nomic-embed-text:latest). */
function modelName(raw: string): string {
  if (!/^[A-Za-z0-9._:/-]{1,200}$/.test(raw)) throw new InvalidValue("a model name of letters, digits, ., _, :, / and - (at most 200)");
  return raw;
}

/** Any non-empty string without line breaks (tokens, API keys). */
function secretText(raw: string): string {
  if (/[\r\n]/.test(raw)) throw new InvalidValue("one line of text");
  return raw;
}

/** A decimal number in [min, max] (`exclusiveMin`: in (min, max]). */
function decimal(min: number, max: number, exclusiveMin = false): (raw: string) => number {
  const what = `a number ${exclusiveMin ? "greater than" : "from"} ${min} ${exclusiveMin ? "and at most" : "to"} ${max}`;
  return (raw) => {
    if (!/^\d+(\.\d+)?$|^\.\d+$/.test(raw)) throw new InvalidValue(what);
    const n = Number(raw);
    if (!Number.isFinite(n) || n > max || n < min || (exclusiveMin && n === min)) throw new InvalidValue(what);
    return n;
  };
}

/** Run-unit multipliers per plan: `free=1,pro=1.5,enterprise=2`; plans not named keep 1. */
function tierMultipliers(raw: string): Readonly<Record<"free" | "pro" | "enterprise", number>> {
  const what = "a comma list of plan=multiplier for free, pro and enterprise (e.g. free=1,pro=1,enterprise=1), each from 0 to 1000";
  const out = { free: 1, pro: 1, enterprise: 1 };
  for (const part of raw
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x.length > 0)) {
    const m = /^(free|pro|enterprise)\s*=\s*(\d+(?:\.\d+)?)$/i.exec(part);
    const n = Number(m?.[2]);
    if (!m || !Number.isFinite(n) || n > 1000) throw new InvalidValue(what);
    out[m[1]!.toLowerCase() as keyof typeof out] = n;
  }
  return out;
}

/** The non-empty entries of a comma list, trimmed and lower-cased. */
function lowerCaseEntries(raw: string): string[] {
  return raw
    .split(",")
    .map((x) => x.trim().toLowerCase())
    .filter((x) => x.length > 0);
}

/** A comma list of host or host:port entries (or `*`), lower-cased. */
function hostList(raw: string): readonly string[] {
  const out = lowerCaseEntries(raw);
  for (const h of out) {
    if (h !== "*" && !/^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(:\d{1,5})?$/.test(h)) {
      throw new InvalidValue("a comma list of host or host:port entries (e.g. 127.0.0.1:8080,localhost), or *");
    }
  }
  return out;
}

/** A comma list of IP addresses or CIDRs (IPv4 or IPv6), e.g. `10.0.0.0/8,::1`. */
function addressList(raw: string): readonly string[] {
  const out = lowerCaseEntries(raw);
  for (const entry of out) {
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    const max = family === 4 ? 32 : 128;
    const bitsOk = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max);
    if (family === 0 || !bitsOk || extra !== undefined) {
      throw new InvalidValue("a comma list of IP addresses or CIDRs (e.g. 10.0.0.0/8,192.168.1.7,::1)");
    }
  }
  return out;
}

/** A comma list of field names (letters, digits, _ and -), lower-cased. */
function fieldNames(raw: string): readonly string[] {
  const names = raw
    .split(",")
    .map((k) => k.trim().toLowerCase())
    .filter((k) => k.length > 0);
  if (names.length === 0 || !names.every((k) => /^[a-z0-9_-]{1,64}$/.test(k))) {
    throw new InvalidValue("a comma list of field names (letters, digits, _ and -; at most 64 each)");
  }
  return names;
}

/** `*` (any origin) or a list of origins such as https://app.example.com. */
export type CorsOrigins = "*" | readonly string[];

function corsOrigins(raw: string): CorsOrigins {
  const parts = raw
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (parts.length === 1 && parts[0] === "*") return "*";
  const what = "* or a comma list of origins like https://app.example.com (scheme, host and optional port, no path)";
  if (parts.length === 0) throw new InvalidValue(what);
  return parts.map((p) => {
    let u: URL;
    try {
      u = new URL(p);
    } catch {
      throw new InvalidValue(what);
    }
    if ((u.protocol !== "http:" && u.protocol !== "https:") || u.origin !== p.replace(/\/$/, "")) {
      throw new InvalidValue(what);
    }
    return u.origin;
  });
}

/** The Nexus services `nexus serve` can run. */
export const SERVICE_NAMES = ["auth", "metering", "ingestion", "retrieval", "agent", "modules", "integration"] as const;
/** One of {@link SERVICE_NAMES}. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

function serviceList(raw: string): readonly ServiceName[] {
  const what = `all, or a comma list of ${SERVICE_NAMES.join(", ")}`;
  const parts = raw
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
  if (parts.length === 1 && parts[0] === "all") return [...SERVICE_NAMES];
  if (parts.length === 0) throw new InvalidValue(what);
  const out: ServiceName[] = [];
  for (const p of parts) {
    if (!(SERVICE_NAMES as readonly string[]).includes(p)) throw new InvalidValue(what);
    if (!out.includes(p as ServiceName)) out.push(p as ServiceName);
  }
  return out;
}

/** pino log levels accepted by LOG_LEVEL. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * The table every variable comes from. Keys are the {@link NexusConfig} field names.
 * `default: undefined` means "unset" is meaningful (the field is then `undefined`).
 */
const VARIABLES = {
  host: variable({
    name: "NEXUS_HOST",
    default: "0.0.0.0",
    description: "Interface the server binds to.",
    parse: host,
  }),
  port: variable({
    name: "NEXUS_PORT",
    default: "8080",
    description: "TCP port for gRPC, gRPC-Web, Connect, /metrics, /healthz and /readyz.",
    parse: integer(0, 65535),
  }),
  logLevel: variable({
    name: "LOG_LEVEL",
    default: "info",
    description: "pino level: fatal, error, warn, info, debug, trace, silent.",
    parse: oneOf(LOG_LEVELS),
  }),
  logPretty: variable({
    name: "NEXUS_LOG_PRETTY",
    default: "false",
    description: "Human-readable log lines instead of JSON (development).",
    parse: boolean,
  }),
  databaseUrl: variable<string | undefined>({
    name: "DATABASE_URL",
    default: undefined,
    unsetMeaning: "(unset: embedded PGlite)",
    description: "PostgreSQL URL (postgres:// or postgresql://); secret.",
    secret: true,
    parse: urlWith(["postgres:", "postgresql:"], "a postgres:// or postgresql:// URL"),
  }),
  databaseEndpointFile: variable({
    name: "NEXUS_DATABASE_ENDPOINT_FILE",
    default: "/etc/nexus/runtime/databaseEndpoint",
    description:
      "File naming the primary database as host:port (a failover's `databaseEndpoint`; the chart mounts the operator's flag here). With DATABASE_URL, the process connects there instead of the URL's host and port, and switches when the file changes. Missing or empty file = DATABASE_URL as it is.",
    parse: path,
  }),
  dataDir: variable({
    name: "NEXUS_DATA_DIR",
    default: ".nexus",
    description: "Directory for the embedded PGlite database files.",
    parse: path,
  }),
  natsUrl: variable<readonly string[] | undefined>({
    name: "NATS_URL",
    default: undefined,
    unsetMeaning: "(unset: local in-process bus)",
    description: "NATS server(s), comma-separated nats:// URLs; secret.",
    secret: true,
    parse: urlList(["nats:", "tls:", "ws:", "wss:"], "a comma list of nats:// (or tls://, ws://, wss://) URLs"),
  }),
  natsStream: variable({
    name: "NEXUS_NATS_STREAM",
    default: "NEXUS_EVENTS",
    description: "JetStream stream holding domain events.",
    parse: streamName,
  }),
  subjectPrefix: variable({
    name: "NEXUS_SUBJECT_PREFIX",
    default: "nexus",
    description: "First token of event subjects (`<prefix>.<domain>.<event>`).",
    parse: subjectToken,
  }),
  dlqStream: variable({
    name: "NEXUS_DLQ_STREAM",
    default: "NEXUS_DLQ",
    description: "JetStream stream holding dead-lettered messages.",
    parse: streamName,
  }),
  natsReplicas: variable({
    name: "NEXUS_NATS_REPLICAS",
    default: "1",
    description:
      "Replicas of the JetStream streams Nexus creates (events and DLQ): 3 on a clustered NATS. Used when a stream is created; an existing stream keeps its own.",
    parse: integer(1, 5),
  }),
  maxDeliver: variable({
    name: "NEXUS_MAX_DELIVER",
    default: "5",
    description: "Deliveries of an event before it goes to the DLQ.",
    parse: integer(1, 1000),
  }),
  sagaLeaseMs: variable({
    name: "NEXUS_SAGA_LEASE_MS",
    default: "30000",
    description:
      "How long a saga runner's lease lasts without renewal (renewed every third of it); a process resumes an unfinished saga whose lease lapsed (its runner died) at start-up and then every this long.",
    parse: integer(1000, 3_600_000),
  }),
  watchEventsPerSecond: variable({
    name: "NEXUS_WATCH_EVENTS_PER_SECOND",
    default: "100",
    description:
      "EventStoreService.WatchEvents throttle: events delivered per second per API key, per process (a token bucket with a burst of the same size). It slows a feed down, never drops an event.",
    parse: integer(1, 100_000),
  }),
  projectionMonitorIntervalMs: variable({
    name: "NEXUS_PROJECTION_MONITOR_INTERVAL_MS",
    default: "5000",
    description:
      "How often each process measures the health of the projections its services own (rows, rows behind, lag in seconds: the nexus_projection_* metrics and GET /projections/health). Each round queries every projection's table.",
    parse: integer(250, 3_600_000),
  }),
  snapshotEveryEvents: variable({
    name: "NEXUS_SNAPSHOT_EVERY_EVENTS",
    default: "100",
    description:
      "Event-sourced aggregates (tenants) take a snapshot once this many events were appended since the last one (unless the aggregate's own policy sets it).",
    parse: integer(1, 1_000_000),
  }),
  snapshotEveryBytes: variable({
    name: "NEXUS_SNAPSHOT_EVERY_BYTES",
    default: "262144",
    description: "… or once the event payloads appended since the last snapshot reach this many bytes.",
    parse: integer(1024, 1_073_741_824),
  }),
  snapshotMaxAgeMs: variable({
    name: "NEXUS_SNAPSHOT_MAX_AGE_MS",
    default: "86400000",
    description: "… or when the last snapshot (or the stream's first event) is older than this and events were appended since.",
    parse: integer(1000, 31_536_000_000),
  }),
  maxRequestBytes: variable({
    name: "NEXUS_MAX_REQUEST_BYTES",
    default: "4194304",
    description: "Largest accepted request message (bytes); larger → RESOURCE_EXHAUSTED.",
    parse: integer(1024, 0xffffffff),
  }),
  shutdownTimeoutMs: variable({
    name: "NEXUS_SHUTDOWN_TIMEOUT_MS",
    default: "15000",
    description: "How long a graceful shutdown waits for in-flight RPCs.",
    parse: integer(0, 600_000),
  }),
  corsOrigins: variable({
    name: "NEXUS_CORS_ORIGINS",
    default: "*",
    description: "Browser origins allowed by CORS: `*` or a comma list of origins.",
    parse: corsOrigins,
  }),
  services: variable({
    name: "NEXUS_SERVICES",
    default: "all",
    description: "Services `nexus serve` runs: `all` or a comma list of auth, metering, ingestion, retrieval, agent, modules.",
    parse: serviceList,
  }),
  authUrl: variable<string | undefined>({
    name: "NEXUS_AUTH_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts auth)",
    description: "Base URL of the auth service for calls from other services, e.g. http://nexus-auth:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  meteringUrl: variable<string | undefined>({
    name: "NEXUS_METERING_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts metering)",
    description: "Base URL of the metering (and audit) service for calls from other services, e.g. http://nexus-metering:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  ingestionUrl: variable<string | undefined>({
    name: "NEXUS_INGESTION_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts ingestion)",
    description: "Base URL of the ingestion service for calls from other services, e.g. http://nexus-ingestion:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  retrievalUrl: variable<string | undefined>({
    name: "NEXUS_RETRIEVAL_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts retrieval)",
    description: "Base URL of the retrieval service for calls from other services, e.g. http://nexus-retrieval:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  agentUrl: variable<string | undefined>({
    name: "NEXUS_AGENT_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts agent)",
    description: "Base URL of the agent service for calls from other services, e.g. http://nexus-agent:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  modulesUrl: variable<string | undefined>({
    name: "NEXUS_MODULES_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts modules)",
    description: "Base URL of the modules service for calls from other services, e.g. http://nexus-modules:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  integrationUrl: variable<string | undefined>({
    name: "NEXUS_INTEGRATION_URL",
    default: undefined,
    unsetMeaning: "(unset: this process, when it hosts integration)",
    description: "Base URL of the integration service for calls from other services, e.g. http://nexus-integration:8080.",
    parse: urlWith(["http:", "https:"], "an http:// or https:// base URL"),
  }),
  integrationMaxRetries: variable({
    name: "NEXUS_INTEGRATION_MAX_RETRIES",
    default: "10",
    description:
      "Retries of an integration delivery that fails retryably (exponential backoff with jitter) before it goes to the dead-letter queue, for destinations without their own max_retries; a failure retrying cannot fix goes there at once.",
    parse: integer(0, 100),
  }),
  integrationRetryInitialMs: variable({
    name: "NEXUS_INTEGRATION_RETRY_INITIAL_MS",
    default: "1000",
    description: "First retry delay of a failing integration delivery (doubling up to NEXUS_INTEGRATION_RETRY_MAX_MS).",
    parse: integer(10, 3_600_000),
  }),
  integrationRetryMaxMs: variable({
    name: "NEXUS_INTEGRATION_RETRY_MAX_MS",
    default: "300000",
    description: "Longest retry delay of a failing integration delivery.",
    parse: integer(10, 86_400_000),
  }),
  integrationAckWaitMs: variable({
    name: "NEXUS_INTEGRATION_ACK_WAIT_MS",
    default: "30000",
    description:
      "How long an integration delivery may go unacknowledged (its process silent, e.g. killed) before another replica takes it over; running deliveries keep extending it.",
    parse: integer(1_000, 3_600_000),
  }),
  integrationReplicaId: variable<string | undefined>({
    name: "NEXUS_INTEGRATION_REPLICA_ID",
    default: undefined,
    unsetMeaning: "(unset: the host name and NEXUS_PORT, which a restarted process or pod keeps)",
    description:
      "This replica's name in its MQTT client ids (one persistent session per source and replica): the same after a restart, so a process killed with -9 resumes its session and the QoS 1 messages queued for it instead of leaving them to an orphaned session. Unique per replica.",
    parse: nonEmptyName,
  }),
  integrationConcurrency: variable({
    name: "NEXUS_INTEGRATION_CONCURRENCY",
    default: "8",
    description: "Integration deliveries (and messages per workflow) handled at once per process.",
    parse: integer(1, 256),
  }),
  writeFreezeFile: variable({
    name: "NEXUS_WRITE_FREEZE_FILE",
    default: "/etc/nexus/runtime/writeFrozen",
    description:
      "File whose content `true` refuses every mutating RPC with UNAVAILABLE WRITE_FROZEN (a failover's freeze; the chart mounts the operator's flag here). Missing file = not frozen.",
    parse: path,
  }),
  eventsPartitionMaxCopyRows: variable({
    name: "NEXUS_EVENTS_PARTITION_MAX_COPY_ROWS",
    default: "2000000",
    description:
      "Most events the platform migration 0006_events_partitioned copies into the hash-partitioned event table at start-up (appends wait during the copy); a larger store refuses to migrate until an operator schedules it with the write freeze and a higher value.",
    parse: integer(0, Number.MAX_SAFE_INTEGER),
  }),
  serviceName: variable({
    name: "NEXUS_SERVICE_NAME",
    default: "nexus",
    description: "Service name reported to telemetry (OTEL_SERVICE_NAME wins when set).",
    parse: nonEmptyName,
  }),
  authCacheTtlMs: variable({
    name: "NEXUS_AUTH_CACHE_TTL_MS",
    default: "30000",
    description:
      "Longest time a process reuses an API key's authentication answer (revocation, suspension and role changes end it at once via events); 0 turns the cache off.",
    parse: integer(0, 3_600_000),
  }),
  oidcJwksCooldownMs: variable({
    name: "NEXUS_OIDC_JWKS_COOLDOWN_MS",
    default: "30000",
    description:
      "Least time between two fetches of an OpenID issuer's signing keys (a token signed by an unknown key triggers a fetch, so key rotation is picked up without a restart).",
    parse: integer(0, 3_600_000),
  }),
  oidcHttpTimeoutMs: variable({
    name: "NEXUS_OIDC_HTTP_TIMEOUT_MS",
    default: "5000",
    description: "Deadline of each call to an OpenID provider (discovery, signing keys); a slow provider fails closed with UNAVAILABLE.",
    parse: integer(100, 60_000),
  }),
  platformOidcIssuer: variable<string | undefined>({
    name: "NEXUS_PLATFORM_OIDC_ISSUER",
    default: undefined,
    unsetMeaning: "(unset: platform operators authenticate with platform API keys only)",
    description:
      "The installation's own OpenID issuer (https, or http on localhost): its access tokens authenticate platform operators (users flagged with SetPlatformOperator) as platform principals (docs/identity.md).",
    parse: (raw) => {
      const url = urlWith(["https:", "http:"], "an https:// issuer URL")(raw);
      const { protocol, hostname } = new URL(url);
      if (protocol === "http:" && hostname !== "localhost" && hostname !== "127.0.0.1" && hostname !== "[::1]") {
        throw new InvalidValue("an https:// issuer URL (http only for localhost)");
      }
      return url;
    },
  }),
  platformOidcAudience: variable({
    name: "NEXUS_PLATFORM_OIDC_AUDIENCE",
    default: "nexus-platform",
    description: "The audience (`aud`) access tokens of NEXUS_PLATFORM_OIDC_ISSUER must carry to authenticate a platform operator.",
    parse: (raw) => {
      if (!/^\S{1,256}$/.test(raw)) throw new InvalidValue("an audience of at most 256 characters without spaces");
      return raw;
    },
  }),
  platformOidcUserClaim: variable({
    name: "NEXUS_PLATFORM_OIDC_USER_CLAIM",
    default: "email",
    description: "The claim of a platform access token that names the operator's e-mail.",
    parse: nonEmptyName,
  }),
  ssoSessionTtlSeconds: variable({
    name: "NEXUS_SSO_SESSION_TTL_SECONDS",
    default: "28800",
    description: "Lifetime of a sign-in session started through a tenant's OpenID provider (docs/identity.md); sign-out ends it earlier.",
    parse: integer(60, 30 * 86_400),
  }),
  ssoStateTtlSeconds: variable({
    name: "NEXUS_SSO_STATE_TTL_SECONDS",
    default: "600",
    description:
      "Longest time a sign-in may take between the redirect to the identity provider and its callback (state, nonce and PKCE verifier expire).",
    parse: integer(30, 3_600),
  }),
  authCacheMaxEntries: variable({
    name: "NEXUS_AUTH_CACHE_MAX_ENTRIES",
    default: "10000",
    description: "Most authentication answers cached per process (least recently used dropped first).",
    parse: integer(1, 10_000_000),
  }),
  authAttemptBurst: variable({
    name: "NEXUS_AUTH_ATTEMPT_BURST",
    default: "20",
    description:
      "Refused authentication attempts a client address, and a claimed API key id, may make in a burst before further attempts are refused at once with RESOURCE_EXHAUSTED AUTH_RATE_LIMITED (no key lookup, no audit row per call); successful ones cost nothing. Per process; 0 turns the limiter off.",
    parse: integer(0, 1_000_000),
  }),
  authAttemptRatePerSecond: variable({
    name: "NEXUS_AUTH_ATTEMPT_RATE_PER_SECOND",
    default: "1",
    description:
      "Refused authentication attempts per second a client address and a claimed key id regain (the buckets' refill); 0 turns the limiter off.",
    parse: decimal(0, 1_000_000),
  }),
  authAttemptMaxEntries: variable({
    name: "NEXUS_AUTH_ATTEMPT_MAX_ENTRIES",
    default: "10000",
    description:
      "Most client addresses, and most key ids, whose refused-attempt buckets a process keeps (least recently used dropped first), so a spray of random key ids or addresses cannot grow memory.",
    parse: integer(1, 10_000_000),
  }),
  trustedProxies: variable({
    name: "NEXUS_TRUSTED_PROXIES",
    default: undefined,
    unsetMeaning: "(unset: none)",
    description:
      "Comma list of proxy addresses or CIDRs (e.g. 10.0.0.0/8,::1) whose X-Forwarded-For is believed: for a connection from one of them, the client address (refused-authentication limiter) is the last X-Forwarded-For hop that is not itself a trusted proxy. Unset: the connection's peer address, and X-Forwarded-For is ignored.",
    parse: addressList,
  }),
  rateLimitEnabled: variable({
    name: "NEXUS_RATE_LIMIT_ENABLED",
    default: "true",
    description:
      "Token-bucket rate limits per API key and per tenant by route class (run, mutation, read, ops); refusals are RESOURCE_EXHAUSTED RATE_LIMITED with RetryInfo and retry-after (HTTP 429).",
    parse: boolean,
  }),
  rateLimits: variable({
    name: "NEXUS_RATE_LIMITS",
    default: DEFAULT_RATE_LIMITS_SPEC,
    description:
      "Limits as class=keyRate/keyBurst:tenantRate/tenantBurst (requests per second / burst), comma-separated; classes not named keep their defaults. Shared by replicas through PostgreSQL, in-process on PGlite.",
    parse: (raw) => {
      try {
        return parseRateLimits(raw);
      } catch (err) {
        throw new InvalidValue(`class=keyRate/keyBurst:tenantRate/tenantBurst entries (${(err as Error).message})`);
      }
    },
  }),
  rateLimitFailMode: variable({
    name: "NEXUS_RATE_LIMIT_FAIL_MODE",
    default: "open",
    description:
      "When the shared buckets cannot be reached: open (let calls through, header x-ratelimit-status: degraded) or closed (UNAVAILABLE RATE_LIMIT_UNAVAILABLE).",
    parse: oneOf(["open", "closed"] as const),
  }),
  idempotencyTtlSeconds: variable({
    name: "NEXUS_IDEMPOTENCY_TTL_SECONDS",
    default: "86400",
    description: "How long the answer to a call with an idempotency-key header is kept for replays.",
    parse: integer(60, 30 * 86_400),
  }),
  idempotencyWaitMs: variable({
    name: "NEXUS_IDEMPOTENCY_WAIT_MS",
    default: "10000",
    description: "How long a duplicate of a call still running waits for its answer before ABORTED IDEMPOTENCY_IN_PROGRESS.",
    parse: integer(0, 600_000),
  }),
  masterKeys: variable<MasterKeys | undefined>({
    name: "NEXUS_MASTER_KEYS",
    default: undefined,
    unsetMeaning: "(unset: NEXUS_MASTER_KEY_FILE; nexus dev creates <NEXUS_DATA_DIR>/master-keys)",
    description:
      "Master keys (key-encryption keys) of the keyring that encrypts data at rest: comma-separated <version>:<base64 of 32 random bytes>, the highest version wraps new data keys (docs/security.md); secret.",
    secret: true,
    parse: (raw) => {
      try {
        return parseMasterKeys(raw, "NEXUS_MASTER_KEYS");
      } catch (err) {
        if (err instanceof MasterKeyFormatError)
          throw new InvalidValue("<version>:<base64 of 32 bytes>[,<version>:<base64>…], e.g. 1:$(openssl rand -base64 32)");
        throw err;
      }
    },
  }),
  masterKeyFile: variable({
    name: "NEXUS_MASTER_KEY_FILE",
    default: "/etc/nexus/keyring/master-keys",
    description:
      "File with the keyring's master keys in the NEXUS_MASTER_KEYS format, one per line (the chart mounts a Kubernetes Secret here); read at start when NEXUS_MASTER_KEYS is unset.",
    parse: path,
  }),
  backupDir: variable<string | undefined>({
    name: "NEXUS_BACKUP_DIR",
    default: undefined,
    unsetMeaning: "(unset: a crypto-shred reaches the shred list with the next `nexus backup`)",
    description:
      "The directory `nexus backup --out` writes to (the chart's backup volume). When set, a crypto-shred (tenant offboarding) writes the tenant into its signed shred-list.json at once (docs/governance.md#crypto-shredding).",
    parse: path,
  }),
  encryptionAtRest: variable({
    name: "NEXUS_ENCRYPTION_AT_REST",
    default: "auto",
    description:
      "Seal document contents, chunk texts and session messages with the keyring: auto (whenever a master key is configured), on (a process without a master key refuses to start) or off (written in the clear; sealed values still open). docs/security.md.",
    parse: oneOf(["auto", "on", "off"] as const),
  }),
  retentionIntervalMs: variable({
    name: "NEXUS_RETENTION_INTERVAL_MS",
    default: "3600000",
    description:
      "How often each service applies the tenants' retention policies to its own tables (docs/governance.md#retention-and-legal-holds).",
    parse: integer(1_000, 86_400_000),
  }),
  subjectRequestIntervalMs: variable({
    name: "NEXUS_SUBJECT_REQUEST_INTERVAL_MS",
    default: "5000",
    description:
      "How often each service looks for data-subject requests (export, erase) needing its part (docs/governance.md#data-subject-requests).",
    parse: integer(500, 3_600_000),
  }),
  apiKeyRotationGraceSeconds: variable({
    name: "NEXUS_API_KEY_ROTATION_GRACE_SECONDS",
    default: "86400",
    description: "How long a rotated API key keeps working when RotateApiKey names no grace period (0 = revoke at once).",
    parse: integer(0, 2_592_000),
  }),
  apiKeyInactiveDays: variable({
    name: "NEXUS_API_KEY_INACTIVE_DAYS",
    default: "90",
    description: "API keys unused this many days are refused with AUTH_INACTIVE_KEY until reactivated; 0 disables the limit.",
    parse: integer(0, 36_500),
  }),
  maxActiveApiKeys: variable({
    name: "NEXUS_MAX_ACTIVE_API_KEYS",
    default: "100",
    description: "Active API keys a tenant may hold (per-tenant override: max_active_api_keys); one more → KEY_LIMIT_REACHED.",
    parse: integer(1, 100_000),
  }),
  consoleSessionTtlSeconds: variable({
    name: "NEXUS_CONSOLE_SESSION_TTL_SECONDS",
    default: "28800",
    description: "How long a console sign-in lasts before the browser must sign in again (the session is stored hashed in auth).",
    parse: integer(60, 2_592_000),
  }),
  consoleDir: variable<string | undefined>({
    name: "NEXUS_CONSOLE_DIR",
    default: undefined,
    unsetMeaning: "(the built console/dist of the installation)",
    description: "Directory of the built web console served at /console; the console is off when it holds no index.html.",
    parse: path,
  }),
  bootstrapKeyId: variable<string | undefined>({
    name: "NEXUS_BOOTSTRAP_KEY_ID",
    default: undefined,
    unsetMeaning: "(unset)",
    description: "Key id of a platform key to install at start-up from its digest (Kubernetes); set with NEXUS_BOOTSTRAP_KEY_SHA256.",
    parse: bootstrapKeyId,
  }),
  bootstrapKeySha256: variable<string | undefined>({
    name: "NEXUS_BOOTSTRAP_KEY_SHA256",
    default: undefined,
    unsetMeaning: "(unset)",
    description: "Hex SHA-256 of that whole plaintext key (as `sha256sum` prints it); the plaintext never reaches Nexus.",
    parse: sha256Hex,
  }),
  lexicalOnly: variable({
    name: "NEXUS_LEXICAL_ONLY",
    default: "false",
    description: "Search by PostgreSQL full-text rank only, without pgvector; required on a PostgreSQL that lacks the vector extension.",
    parse: boolean,
  }),
  searchEfSearch: variable({
    name: "NEXUS_SEARCH_EF_SEARCH",
    default: "100",
    description:
      "Smallest HNSW candidate list (pgvector hnsw.ef_search) of a vector or hybrid Search; it grows with top_k (4 × top_k, up to 200). Higher finds more of the exact nearest chunks (recall) at some latency: npm run bench search reports recall@10 per value.",
    parse: integer(10, 1000),
  }),
  embeddingModel: variable({
    name: "NEXUS_EMBEDDING_MODEL",
    default: "hash-256",
    description:
      "Embedding model of new corpora: hash-<dimensions> (deterministic, offline) or a model name of the server at NEXUS_EMBEDDINGS_URL.",
    parse: modelName,
  }),
  embeddingDimensions: variable<number | undefined>({
    name: "NEXUS_EMBEDDING_DIMENSIONS",
    default: undefined,
    unsetMeaning: "(unset: the model's own)",
    description: "Vector size of new corpora, 8-4096 (hash-<n> models: n; other models: 1536 unless set).",
    parse: integer(8, 4096),
  }),
  embeddingsUrl: variable<string | undefined>({
    name: "NEXUS_EMBEDDINGS_URL",
    default: undefined,
    unsetMeaning: "(unset: hash models only)",
    description: "Base URL of an OpenAI-compatible embeddings API including the version, e.g. https://api.openai.com/v1; secret.",
    secret: true,
    parse: urlWith(["http:", "https:"], "an http:// or https:// URL such as https://api.openai.com/v1"),
  }),
  embeddingsApiKey: variable<string | undefined>({
    name: "NEXUS_EMBEDDINGS_API_KEY",
    default: undefined,
    unsetMeaning: "(unset)",
    description: "Bearer token for NEXUS_EMBEDDINGS_URL; secret.",
    secret: true,
    parse: secretText,
  }),
  embeddingsBatchSize: variable({
    name: "NEXUS_EMBEDDINGS_BATCH_SIZE",
    default: "64",
    description: "Texts per embeddings request.",
    parse: integer(1, 2048),
  }),
  embeddingsTimeoutMs: variable({
    name: "NEXUS_EMBEDDINGS_TIMEOUT_MS",
    default: "30000",
    description: "Timeout of one embeddings request (retried with backoff, behind a circuit breaker).",
    parse: integer(100, 600_000),
  }),
  maxUploadBytes: variable({
    name: "NEXUS_MAX_UPLOAD_BYTES",
    default: "52428800",
    description: "Largest document UploadDocument accepts (bytes); larger → RESOURCE_EXHAUSTED REQUEST_TOO_LARGE.",
    parse: integer(1024, 1_073_741_824),
  }),
  ingestConcurrency: variable({
    name: "NEXUS_INGEST_CONCURRENCY",
    default: "2",
    description: "Documents one ingestion worker process handles at once.",
    parse: integer(1, 64),
  }),
  ingestAckWaitMs: variable({
    name: "NEXUS_INGEST_ACK_WAIT_MS",
    default: "30000",
    description: "How long JetStream waits for a silent ingestion worker before redelivering its document to another.",
    parse: integer(1000, 3_600_000),
  }),
  ingestSweepIntervalMs: variable({
    name: "NEXUS_INGEST_SWEEP_INTERVAL_MS",
    default: "5000",
    description: "How often ingestion marks documents whose job reached the dead-letter queue as failed.",
    parse: integer(100, 3_600_000),
  }),
  agentMaxConcurrentRuns: variable({
    name: "NEXUS_AGENT_MAX_CONCURRENT_RUNS",
    default: "32",
    description: "Runs one agent replica serves at once (bulkhead); one more → UNAVAILABLE SERVICE_BUSY with RetryInfo.",
    parse: integer(1, 100_000),
  }),
  agentHeartbeatMs: variable({
    name: "NEXUS_AGENT_HEARTBEAT_MS",
    default: "10000",
    description: "Interval of heartbeat events on a Run stream while nothing else is sent.",
    parse: integer(50, 3_600_000),
  }),
  agentResumeGraceMs: variable({
    name: "NEXUS_AGENT_RESUME_GRACE_MS",
    default: "30000",
    description:
      "How long a resumable run (RunRequest.resumable) keeps running after its call dropped with no WatchRun attached; then it is cancelled.",
    parse: integer(0, 3_600_000),
  }),
  agentRunRetainMs: variable({
    name: "NEXUS_AGENT_RUN_RETAIN_MS",
    default: "300000",
    description: "How long a replica keeps an ended run's events in memory for WatchRun; later the answer is read from the session.",
    parse: integer(0, 86_400_000),
  }),
  agentHistoryTurns: variable({
    name: "NEXUS_AGENT_HISTORY_TURNS",
    default: "10",
    description: "Most earlier turns (question and answer) of a session given to the model.",
    parse: integer(0, 1000),
  }),
  agentHistoryChars: variable({
    name: "NEXUS_AGENT_HISTORY_CHARS",
    default: "8000",
    description: "Character budget of that history; the oldest messages are dropped first.",
    parse: integer(0, 10_000_000),
  }),
  agentRetrievalTimeoutMs: variable({
    name: "NEXUS_AGENT_RETRIEVAL_TIMEOUT_MS",
    default: "10000",
    description: "Timeout of a run's Search call (behind a circuit breaker).",
    parse: integer(10, 600_000),
  }),
  agentToolTimeoutMs: variable({
    name: "NEXUS_AGENT_TOOL_TIMEOUT_MS",
    default: "15000",
    description: "Timeout of one tool call a run makes (modules CallTool); a call past it is a failed tool_result, not a failed run.",
    parse: integer(10, 600_000),
  }),
  agentModelTimeoutMs: variable({
    name: "NEXUS_AGENT_MODEL_TIMEOUT_MS",
    default: "30000",
    description:
      "Longest wait for the model's first chunk and between chunks; a stalled stream fails with UNAVAILABLE (behind a circuit breaker).",
    parse: integer(10, 3_600_000),
  }),
  agentBreakerFailures: variable({
    name: "NEXUS_AGENT_BREAKER_FAILURES",
    default: "5",
    description: "Consecutive failures of the model or of retrieval that open its circuit breaker.",
    parse: integer(1, 1000),
  }),
  agentBreakerResetMs: variable({
    name: "NEXUS_AGENT_BREAKER_RESET_MS",
    default: "30000",
    description:
      "The longest an open circuit breaker fails fast before it lets one probe call through (half-open): the first wait is 1 s (or this, if shorter) and doubles while probes fail, so a dependency that comes back is used again promptly.",
    parse: integer(10, 3_600_000),
  }),
  modulesTimeoutMs: variable({
    name: "NEXUS_MODULES_TIMEOUT_MS",
    default: "5000",
    description: "Hard wall-clock timeout of one module tool call (network waits included), and the most a manifest may ask for.",
    parse: integer(10, 600_000),
  }),
  modulesCpuMs: variable({
    name: "NEXUS_MODULES_CPU_MS",
    default: "1000",
    description:
      "CPU time a code module may spend interpreting JavaScript per call (QuickJS interrupt handler), and the most a manifest may ask for.",
    parse: integer(1, 600_000),
  }),
  modulesMemoryBytes: variable({
    name: "NEXUS_MODULES_MEMORY_BYTES",
    default: "33554432",
    description: "Memory of a code module's QuickJS runtime per call (32 MiB), and the most a manifest may ask for.",
    parse: integer(1_048_576, 1_073_741_824),
  }),
  modulesMaxRequests: variable({
    name: "NEXUS_MODULES_MAX_REQUESTS",
    default: "20",
    description: "Egress requests one module call may make through the broker, and the most a manifest may ask for.",
    parse: integer(0, 1000),
  }),
  modulesSandboxWorkers: variable({
    name: "NEXUS_MODULES_SANDBOX_WORKERS",
    default: "2",
    description:
      "Worker threads a modules replica runs sandboxed code on (one call each at a time, the rest queue); a call stuck past its timeout has its worker terminated.",
    parse: integer(1, 64),
  }),
  modulesCacheEntries: variable({
    name: "NEXUS_MODULES_CACHE_ENTRIES",
    default: "1000",
    description:
      "Tool results a modules replica keeps in its in-memory cache (modules opt in with cache_ttl_seconds); 0 turns caching off.",
    parse: integer(0, 1_000_000),
  }),
  modulesEgressAllowPrivate: variable<readonly string[] | undefined>({
    name: "NEXUS_MODULES_EGRESS_ALLOW_PRIVATE",
    default: undefined,
    unsetMeaning: "(unset: none)",
    description:
      "Declared egress hosts (host or host:port, comma-separated; * for all) a module may reach although they resolve to a loopback, private, link-local or otherwise non-public address. Unset (default): such addresses are refused (SSRF). For tests and local development.",
    parse: hostList,
  }),
  agentQuotaFailOpen: variable({
    name: "NEXUS_AGENT_QUOTA_FAIL_OPEN",
    default: "true",
    description:
      "When metering cannot be reached: admit runs (true, logged and counted) or refuse them with UNAVAILABLE DEPENDENCY_UNAVAILABLE (false).",
    parse: boolean,
  }),
  agentDefaultProvider: variable({
    name: "NEXUS_AGENT_DEFAULT_PROVIDER",
    default: "extractive",
    description: "Model provider of runs whose request and corpus name none: extractive (offline, deterministic) or openai.",
    parse: oneOf(["extractive", "openai"] as const),
  }),
  openaiBaseUrl: variable<string | undefined>({
    name: "NEXUS_OPENAI_BASE_URL",
    default: undefined,
    unsetMeaning: "(unset: openai provider off)",
    description:
      "Base URL of an OpenAI-compatible Chat Completions API including the version, e.g. https://api.openai.com/v1 (vLLM, Ollama, llama.cpp, Gemini's compatible endpoint); secret.",
    secret: true,
    parse: urlWith(["http:", "https:"], "an http:// or https:// URL such as https://api.openai.com/v1"),
  }),
  openaiModel: variable({
    name: "NEXUS_OPENAI_MODEL",
    default: "gpt-4o-mini",
    description: "Chat model of the openai provider when neither the request nor the corpus names one.",
    parse: modelName,
  }),
  openaiApiKey: variable<string | undefined>({
    name: "NEXUS_OPENAI_API_KEY",
    default: undefined,
    unsetMeaning: "(unset)",
    description: "Bearer token for NEXUS_OPENAI_BASE_URL; secret.",
    secret: true,
    parse: secretText,
  }),
  runUnitTierMultipliers: variable({
    name: "NEXUS_RUN_UNIT_TIER_MULTIPLIERS",
    default: "free=1,pro=1,enterprise=1",
    description:
      "Run units per compute second by plan: run units = max(cpu_s, gpu_s) × multiplier + tool calls × NEXUS_RUN_UNIT_TOOL_CALL_OVERHEAD.",
    parse: tierMultipliers,
  }),
  runUnitToolCallOverhead: variable({
    name: "NEXUS_RUN_UNIT_TOOL_CALL_OVERHEAD",
    default: "0.1",
    description: "Run units charged per tool call of a run (retrieval counts as one).",
    parse: decimal(0, 1000),
  }),
  quotaSoftCapRatio: variable({
    name: "NEXUS_QUOTA_SOFT_CAP_RATIO",
    default: "0.8",
    description:
      "Share of a quota limit at which the soft cap fires (QuotaSoftCapReached, once per period), for tenants whose quota sets none.",
    parse: decimal(0, 1, true),
  }),
  quotaReservationTtlSeconds: variable({
    name: "NEXUS_QUOTA_RESERVATION_TTL_SECONDS",
    default: "900",
    description: "How long a CheckQuota reservation holds capacity when neither its run's events nor CommitQuota/ReleaseQuota settle it.",
    parse: integer(10, 86_400),
  }),
  billingWebhookUrl: variable<string | undefined>({
    name: "NEXUS_BILLING_WEBHOOK_URL",
    default: undefined,
    unsetMeaning: "(unset: no billing webhook)",
    description:
      "Receiver of quota events (soft cap, hard-cap block, overage), POSTed as signed JSON; needs NEXUS_BILLING_WEBHOOK_SECRET; secret.",
    secret: true,
    parse: urlWith(["http:", "https:"], "an http:// or https:// URL"),
  }),
  billingWebhookSecret: variable<string | undefined>({
    name: "NEXUS_BILLING_WEBHOOK_SECRET",
    default: undefined,
    unsetMeaning: "(unset)",
    description: "HMAC-SHA256 key signing billing webhook deliveries (header X-Nexus-Signature over timestamp.body); secret.",
    secret: true,
    parse: secretText,
  }),
  billingWebhookTimeoutMs: variable({
    name: "NEXUS_BILLING_WEBHOOK_TIMEOUT_MS",
    default: "2000",
    description: "Timeout of one billing webhook attempt; failed attempts are retried with backoff, then dead-lettered.",
    parse: integer(100, 60_000),
  }),
  auditExtraRedactKeys: variable<readonly string[] | undefined>({
    name: "NEXUS_AUDIT_EXTRA_REDACT_KEYS",
    default: undefined,
    unsetMeaning: "(none)",
    description:
      "More field names (comma list) the audit log stores as [REDACTED], besides api_key, authorization, token, secret, password, text and content.",
    parse: fieldNames,
  }),
} as const;

/**
 * Variables Nexus documents but does not parse: the OpenTelemetry SDK reads them itself
 * (see services/kernel/telemetry.ts).
 */
const PASS_THROUGH: readonly ConfigVariable[] = [
  {
    name: "OTEL_EXPORTER_OTLP_ENDPOINT",
    default: "(unset: no export)",
    description: "OTLP collector base URL; setting it turns trace export on. Read by the OpenTelemetry SDK.",
  },
  {
    name: "OTEL_TRACES_EXPORTER",
    default: "(unset: otlp when an endpoint is set, else none)",
    description: "otlp, console or none. Read by the OpenTelemetry SDK.",
  },
  {
    name: "OTEL_SERVICE_NAME",
    default: "(unset)",
    description: "Overrides NEXUS_SERVICE_NAME in traces. Read by the OpenTelemetry SDK.",
  },
  {
    name: "OTEL_SDK_DISABLED",
    default: "false",
    description: "true turns OpenTelemetry off entirely. Read by the OpenTelemetry SDK.",
  },
];

type Variables = typeof VARIABLES;

/** The validated, frozen configuration. Field names are the keys of the variable table. */
export type NexusConfig = {
  readonly [K in keyof Variables]: Variables[K] extends VariableSpec<infer T> ? T : never;
};

/** A documented variable: name, default as shown in docs, and meaning. */
export interface ConfigVariable {
  name: string;
  default: string;
  description: string;
}

/**
 * Every environment variable Nexus reads or documents, in README order. The README's table
 * must list exactly these (a test checks it).
 */
export const CONFIG_VARIABLES: readonly ConfigVariable[] = Object.freeze([
  ...Object.values(VARIABLES).map((v: VariableSpec<unknown>) =>
    Object.freeze({ name: v.name, default: v.default ?? v.unsetMeaning ?? "(unset)", description: v.description }),
  ),
  ...PASS_THROUGH.map((v) => Object.freeze({ ...v })),
]);

/** The variables as a Markdown table (for the README). */
export function configVariablesMarkdown(): string {
  const rows = CONFIG_VARIABLES.map((v) => `| \`${v.name}\` | ${v.default} | ${v.description} |`);
  return ["| Variable | Default | Meaning |", "|---|---|---|", ...rows].join("\n");
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/**
 * Reads and validates one variable of the configuration from `env` (default `process.env`), for
 * code that runs without a loaded {@link NexusConfig} (the platform migrations, started from
 * every bus and CLI command). Throws a {@link ConfigError} when its value is bad.
 */
export function loadConfigValue<K extends keyof NexusConfig>(
  key: K,
  env: Readonly<Record<string, string | undefined>> = process.env,
): NexusConfig[K] {
  const problems: ConfigProblem[] = [];
  const value = parseVariable(VARIABLES[key] as VariableSpec<unknown>, env, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return value as NexusConfig[K];
}

/** One variable's value (its default when unset), or `undefined` with a problem recorded. */
function parseVariable(spec: VariableSpec<unknown>, env: Readonly<Record<string, string | undefined>>, problems: ConfigProblem[]): unknown {
  const given = env[spec.name]?.trim();
  const raw = given === undefined || given === "" ? spec.default : given;
  if (raw === undefined) return undefined;
  try {
    return spec.parse(raw);
  } catch (err) {
    if (!(err instanceof InvalidValue)) throw err;
    const shown = spec.secret ? "(value hidden)" : JSON.stringify(raw);
    const fallback = spec.default !== undefined ? `default ${spec.default}` : `unset means ${spec.unsetMeaning ?? "not set"}`;
    const problem = { variable: spec.name, message: `${spec.name}=${shown} is invalid: expected ${err.expected} (${fallback})` };
    problems.push(problem);
    return undefined;
  }
}

/**
 * Reads and validates the configuration from `env` (default `process.env`). Empty values count
 * as unset. Throws a {@link ConfigError} listing every bad variable.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): NexusConfig {
  const out: Record<string, unknown> = {};
  const problems: ConfigProblem[] = [];
  for (const [key, spec] of Object.entries(VARIABLES) as [string, VariableSpec<unknown>][]) {
    out[key] = parseVariable(spec, env, problems);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze(out) as NexusConfig;
}
