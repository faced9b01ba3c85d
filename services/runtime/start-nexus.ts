import type { UniversalClientFn } from "@connectrpc/connect/protocol";
import type { Logger } from "pino";
import { startMeshSecurity } from "../auth/mesh-security.js";
import type { MeshAuthz } from "../kernel/authz/mesh-authz.js";
import { configureSnapshotThresholds } from "../kernel/commands/index.js";
import { ConfigError, type NexusConfig, type ServiceName } from "../kernel/config.js";
import { createFollowingDatabase, type FollowingDatabase } from "../kernel/db/following-database.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import { createPgliteDatabase } from "../kernel/db/pglite-database.js";
import type { Database } from "../kernel/db/ports.js";
import type { NatsEventBus } from "../kernel/events/nats-bus.js";
import type { EventBus } from "../kernel/events/ports.js";
import { governanceMigrations } from "../kernel/governance/index.js";
import { createWriteFreeze } from "../kernel/interceptors/write-freeze.js";
import { createKeyring, keyringMigrations, resolveMasterKeys } from "../kernel/keyring/index.js";
import { createMemoryBucketStore, createPostgresBucketStore } from "../kernel/limits/bucket-store.js";
import { createIdempotency } from "../kernel/limits/idempotency.js";
import { loadMeshToken } from "../kernel/limits/mesh-token.js";
import { limitsMigrations } from "../kernel/limits/migrations.js";
import { createRateLimitInterceptor } from "../kernel/limits/rate-limit-interceptor.js";
import { createLogger } from "../kernel/logger.js";
import { startProjectionMonitor } from "../kernel/projections/index.js";
import type { SagaDefinition } from "../kernel/sagas/index.js";
import {
  type BoundAddress,
  consoleDirectory,
  consoleRoute,
  createServer,
  type NexusServer,
  type ReadinessResult,
  serverOptionsFromConfig,
} from "../kernel/server/index.js";
import { migrateSchemas, migrateService, mountService } from "../kernel/service/index.js";
import { startTelemetry, type Telemetry } from "../kernel/telemetry.js";
import { shredListRecorder } from "./backup.js";
import { createBus } from "./create-bus.js";
import { createPeers } from "./peers.js";
import { initPgliteDataDir } from "./pglite-init.js";
import { CONSUMER_FED_PROJECTIONS, PROJECTIONS, UNREBUILDABLE_PROJECTIONS } from "./projections.js";
import { startSagaResumer } from "./saga-resumer.js";
import { servicesFor } from "./service-registry.js";
import { type OffboardingInput, tenantOffboardingSaga, tenantOffboardingStarter } from "./tenant-offboarding.js";

/** Options of {@link startNexus}. */
export interface StartNexusOptions {
  config: NexusConfig;
  /** Services to mount; default `config.services`. */
  services?: readonly ServiceName[];
  /** Process logger; default one built from the config. */
  logger?: Logger;
  /** Wall clock given to services. Default `() => new Date()`. */
  clock?: () => Date;
}

/** A running Nexus process: its server, database and bus. */
export interface RunningNexus {
  address: BoundAddress;
  server: NexusServer;
  db: Database;
  bus: EventBus;
  logger: Logger;
  /** The process's authentication gate, cache and permission table (services/kernel/authz). */
  authz: MeshAuthz;
  /** Whether this process serves the web console at /console (it is built). */
  console: boolean;
  /** Which backends run: "pglite" or "postgres", "local" or "nats". */
  backends: { database: Database["dialect"]; bus: EventBus["kind"] };
  /** Graceful shutdown of everything (idempotent). */
  close(): Promise<void>;
}

/** The address other code in this process uses to call it (loopback for wildcard binds). */
function loopbackUrl(address: BoundAddress): string {
  const wildcard = address.host === "0.0.0.0" || address.host === "::" || address.host === "";
  return wildcard ? `http://127.0.0.1:${address.port}` : address.url.replace(/\/$/, "");
}

/**
 * Opens the database the config names: PostgreSQL when DATABASE_URL is set (at the endpoint
 * NEXUS_DATABASE_ENDPOINT_FILE names, following it when a failover moves the primary), else
 * PGlite in NEXUS_DATA_DIR.
 */
export async function openDatabase(config: NexusConfig, logger?: Logger): Promise<Database | FollowingDatabase> {
  const url = config.databaseUrl;
  if (!url) {
    // A new directory is created in a child process: initdb's memory never reaches this one.
    await initPgliteDataDir(config.dataDir);
    return createPgliteDatabase({ dataDir: config.dataDir });
  }
  return createFollowingDatabase({
    url,
    endpointFile: config.databaseEndpointFile,
    open: (at) => createPgDatabase({ url: at, ...(logger ? { logger } : {}) }),
    ...(logger ? { logger } : {}),
  });
}

/**
 * How long a successful `SELECT 1` of the readiness check is reused. Health/Check runs every
 * readiness check, and probes, load balancers and clients may call it hundreds of times a
 * second: without reuse each call costs a statement (on PGlite a turn of the WASM engine on
 * the event loop, on PostgreSQL a pooled connection). A failure is never reused, so recovery
 * shows at the next check; a new failure shows within this time.
 */
export const DATABASE_PING_REUSE_MS = 1000;

/** The readiness check of the database: it answers, and it is the one the failover flags name. */
export function databaseReadiness(db: Database | FollowingDatabase, reuseMs = DATABASE_PING_REUSE_MS): () => Promise<ReadinessResult> {
  let okUntil = 0;
  let inFlight: Promise<void> | undefined;
  const ping = (): Promise<void> => {
    if (performance.now() < okUntil) return Promise.resolve();
    // Concurrent checks share one statement.
    inFlight ??= db.query("SELECT 1").then(
      () => {
        okUntil = performance.now() + reuseMs;
        inFlight = undefined;
      },
      (err: unknown) => {
        inFlight = undefined;
        throw err;
      },
    );
    return inFlight;
  };
  return async () => {
    await ping();
    if (!("endpoint" in db)) return { ready: true };
    const info = { endpoint: db.endpoint() };
    const problem = db.problem();
    return problem ? { ready: false, reason: problem, info } : { ready: true, info };
  };
}

/**
 * The event bus's entry in /readyz: always ready, with the bus's state as info. Readiness
 * means "this process can serve requests", and a NATS outage does not stop it: RPCs keep
 * working (events wait in the outbox) — taking every pod out of service would turn a bus
 * outage into a full outage. The bus's state goes to metrics (`nexus_event_bus_connected`,
 * `nexus_consumer_healthy`, `nexus_outbox_relay_failures`), alerts and this check's info
 * (docs/operations.md, "Readiness").
 */
export function eventBusReadiness(bus: EventBus): () => Promise<ReadinessResult> {
  return async () => {
    const statuses = bus.status();
    const unhealthy = statuses.filter((s) => !s.healthy).map((s) => s.name);
    const info: Record<string, string> = {
      kind: bus.kind,
      consumers: String(statuses.length),
      unhealthy_consumers: unhealthy.join(",") || "none",
    };
    if (bus.kind === "nats") {
      const nats = bus as NatsEventBus;
      info.connected = String(nats.connected());
      const relay = nats.relay?.status();
      if (relay) {
        info.relay = relay.failures > 0 ? `failing: ${relay.lastError ?? "unknown error"}` : relay.leader ? "publishing" : "standing by";
        info.outbox_pending = String(relay.pending);
      }
    }
    return { ready: true, info };
  };
}

/**
 * Applies the kernel's request-limit tables and the own migrations of every service the roles
 * host. The platform schema (event store, outbox) is migrated by the bus's start, which every
 * caller runs first.
 */
export async function migrateServices(db: Database, roles: readonly ServiceName[]): Promise<void> {
  await migrateSchemas(db, [limitsMigrations, keyringMigrations, governanceMigrations]);
  for (const service of servicesFor(roles)) await migrateService(service, db);
}

/**
 * Starts a Nexus process: telemetry, database, event bus, the services' modules on one
 * server, listening on NEXUS_HOST:NEXUS_PORT. `nexus dev` mounts all services on PGlite and
 * the local bus; `nexus serve` mounts some against PostgreSQL and NATS. Same code either way.
 */
export async function startNexus(options: StartNexusOptions): Promise<RunningNexus> {
  const { config } = options;
  const services = options.services ?? config.services;
  const logger = options.logger ?? createLogger({ level: config.logLevel, pretty: config.logPretty, name: "nexus" });
  const telemetry: Telemetry = startTelemetry({ serviceName: config.serviceName, logger });
  const clock = options.clock ?? (() => new Date());
  const cleanups: Array<[string, () => Promise<void>]> = [["telemetry", () => telemetry.shutdown()]];
  const unwind = async () => {
    for (const [name, fn] of cleanups.reverse()) {
      await fn().catch((err: unknown) => logger.error({ err }, `closing ${name} failed`));
    }
  };
  try {
    // Snapshot thresholds of event-sourced aggregates whose policy sets none (tenants).
    configureSnapshotThresholds({
      everyEvents: config.snapshotEveryEvents,
      everyBytes: config.snapshotEveryBytes,
      maxAgeMs: config.snapshotMaxAgeMs,
    });
    const db = await openDatabase(config, logger);
    cleanups.push(["database", () => db.close()]);
    const bus = await createBus({ config, db, logger });
    await bus.start();
    cleanups.push(["event bus", () => bus.close()]);
    await migrateServices(db, services);

    let bound: BoundAddress | undefined;
    const meshToken = await loadMeshToken(db);
    // Set once the server is built: peer calls to the services hosted here go in-process.
    let inProcessClient: UniversalClientFn | undefined;
    const peers = createPeers(config, services, () => bound && loopbackUrl(bound), {
      meshToken,
      inProcess: () => inProcessClient,
    });
    // Every RPC of every service passes the authentication gate and the permission table.
    const authz = await startMeshSecurity({ config, db, bus, clock, logger, peers, hostsAuth: services.includes("auth") });
    cleanups.push(["authz", () => authz.close()]);
    const freeze = createWriteFreeze({ flagFile: config.writeFreezeFile });
    cleanups.push(["write freeze", async () => freeze.close()]);
    // Rate limits: shared by replicas through PostgreSQL; in-process on PGlite (one process).
    const buckets = db.dialect === "postgres" ? createPostgresBucketStore(db) : createMemoryBucketStore();
    cleanups.push(["rate limiter", async () => buckets.close()]);
    const rateLimit = config.rateLimitEnabled
      ? [createRateLimitInterceptor({ store: buckets, limits: config.rateLimits, failMode: config.rateLimitFailMode, logger, meshToken })]
      : [];
    const idempotency = createIdempotency({ db, logger, ttlMs: config.idempotencyTtlSeconds * 1000, waitMs: config.idempotencyWaitMs });
    cleanups.push(["idempotency", async () => idempotency.close()]);
    const masterKeys = await resolveMasterKeys({
      fromEnv: config.masterKeys,
      file: config.masterKeyFile,
      embedded: db.dialect === "pglite",
      dataDir: config.dataDir,
    });
    if (!masterKeys && config.encryptionAtRest === "on")
      throw new ConfigError([
        {
          variable: "NEXUS_ENCRYPTION_AT_REST",
          message:
            "NEXUS_ENCRYPTION_AT_REST=on needs a master key: set NEXUS_MASTER_KEYS or mount NEXUS_MASTER_KEY_FILE (docs/security.md), or use auto",
        },
      ]);
    if (masterKeys) logger.info({ source: masterKeys.source, version: masterKeys.current }, "keyring master key loaded");
    else
      logger.warn("no master key (NEXUS_MASTER_KEYS, NEXUS_MASTER_KEY_FILE): encrypting data at rest refuses with KEYRING_NOT_CONFIGURED");
    // With a backup directory configured, a crypto-shred is on the backups' shred list at once.
    const onShredded = config.backupDir && masterKeys ? shredListRecorder(config.backupDir, masterKeys) : undefined;
    const keyring = createKeyring({ db, masterKeys, logger, ...(onShredded ? { onShredded } : {}) });
    const roles = new Set(services);
    // StartTenantOffboarding (EventStoreService) starts the saga here and drives it in the
    // background; the resumer below takes over a saga whose runner died.
    const offboardingSaga: SagaDefinition<OffboardingInput> = tenantOffboardingSaga(db, keyring);
    const offboarding = tenantOffboardingStarter({
      db,
      def: offboardingSaga,
      leaseMs: config.sagaLeaseMs,
      logger: logger.child({ component: "sagas" }),
    });
    cleanups.push(["offboarding runs", () => offboarding.close()]);
    const modules = servicesFor(services).map((service) =>
      mountService(service, {
        config,
        db,
        bus,
        clock,
        peers,
        roles,
        keyring,
        offboarding,
        logger: logger.child({ service: service.name }),
      }),
    );
    // Every process serves the web console (docs/console.md) when it is built.
    const consoleFiles = consoleRoute(consoleDirectory(config.consoleDir));
    // Projection health (docs/event-sourcing.md): measured every NEXUS_PROJECTION_MONITOR_INTERVAL_MS where their service runs.
    const monitored = PROJECTIONS.filter((p) => roles.has(p.table.split(".")[0] as ServiceName));
    // Consumer-fed read models: their consumer's lag in seconds, where their service runs.
    const hosted = new Set(servicesFor(services).map((s) => s.name as string));
    const consumerFed = [
      ...UNREBUILDABLE_PROJECTIONS.map((p) => ({ projection: p.name, table: p.table, consumer: p.consumer })),
      ...CONSUMER_FED_PROJECTIONS,
    ].filter((p) => hosted.has(p.table.split(".")[0]!));
    const projectionMonitor =
      monitored.length + consumerFed.length > 0
        ? startProjectionMonitor(db, monitored, { consumerFed, intervalMs: config.projectionMonitorIntervalMs })
        : undefined;
    if (projectionMonitor) cleanups.push(["projection monitor", async () => projectionMonitor.close()]);
    const httpRoutes = [...(consoleFiles ? [consoleFiles] : []), ...(projectionMonitor ? [projectionMonitor.route] : [])];
    const server = createServer({
      services: modules,
      ...(httpRoutes.length > 0 ? { httpRoutes } : {}),
      logger,
      authenticate: authz.authenticate,
      authenticateFromCache: authz.authenticateFromCache,
      // auth (gate) → permission table → write freeze (only a caller allowed to write learns of
      // it) → rate limit (a refused call does no work and consumes no quota) → idempotency.
      interceptors: [...authz.interceptors, freeze.interceptor, ...rateLimit, idempotency.interceptor],
      ...serverOptionsFromConfig(config),
      readinessChecks: {
        database: databaseReadiness(db),
        "event-bus": eventBusReadiness(bus),
      },
    });
    inProcessClient = server.inProcessClient;
    // Sagas interrupted by a crash resume without an operator (docs/event-sourcing.md, "Sagas"):
    // where auth runs, since tenant offboarding acts on its tenants; one runner per saga across
    // replicas (a lease).
    if (roles.has("auth")) {
      const resumer = startSagaResumer({
        db,
        defs: [offboardingSaga],
        logger: logger.child({ component: "sagas" }),
        leaseMs: config.sagaLeaseMs,
      });
      cleanups.push(["saga resumer", () => resumer.close()]);
    }
    // Modules drain first (server.close), then the bus, the database and telemetry.
    for (const [name, fn] of [...cleanups].reverse()) server.onShutdown(name, fn);
    cleanups.length = 0;
    const address = await server.listen({ port: config.port, host: config.host });
    bound = address;
    return {
      address,
      server,
      db,
      bus,
      logger,
      authz,
      console: consoleFiles !== undefined,
      backends: { database: db.dialect, bus: bus.kind },
      close: () => server.close(),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
