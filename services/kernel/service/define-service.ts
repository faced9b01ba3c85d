import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl, Transport } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { NexusConfig, ServiceName } from "../config.js";
import type { Migration } from "../db/migrate.js";
import type { Database } from "../db/ports.js";
import type { BackoffOptions, ConsumerOptions, EventBus } from "../events/ports.js";
import type { Keyring } from "../keyring/keyring.js";
import type { TenantOffboardingStarter } from "../sagas/tenant-offboarding-port.js";
import type { HttpRoute, ReadinessCheck } from "../server/service-module.js";
import type { TenantDataDeleter } from "./tenant-data.js";

/**
 * How a service reaches the other services: real gRPC calls, to this very process when it
 * hosts the peer (`nexus dev`), else to NEXUS_<SVC>_URL (`nexus serve`, Kubernetes). The runtime
 * implements it (services/runtime/peers.ts); a service only names the peers it calls.
 */
export interface Peers {
  /** Base URL of a peer service. Throws a ConfigError naming NEXUS_<SVC>_URL when unknown. */
  url(service: ServiceName): string;
  /** A gRPC transport to a peer service (created once, reused; in-process when this process hosts it, services/runtime/peers.ts). */
  transport(service: ServiceName): Transport;
}

/** Defaults the kernel applies to every durable consumer of a service (tests shorten them). */
export interface ConsumerDefaults {
  /** Failed deliveries before the dead-letter queue. Default NEXUS_MAX_DELIVER. */
  maxDeliver?: number;
  /** Retry delays. Default the bus's (1 s doubling to 5 min). */
  backoff?: BackoffOptions;
}

/**
 * What every service receives from the process that hosts it (`nexus dev` or `nexus serve`):
 * its ports, never a global. Services keep their state in their own schema of `db`, publish
 * events only through the kernel's command helper (services/kernel/commands) in their own
 * transactions, and consume through durable consumers they declare.
 */
export interface ServiceContext {
  config: NexusConfig;
  /** Child logger named after the service. */
  logger: Logger;
  db: Database;
  bus: EventBus;
  /** Wall clock; tests may pass a fixed or advancing clock. */
  clock: () => Date;
  /** gRPC transports to the other services (this process when it hosts them). */
  peers: Peers;
  /** The roles (deployable names) this process hosts; a service starts only what they need. */
  roles: ReadonlySet<ServiceName>;
  /** Consumer settings every consumer of the service gets unless it sets its own. */
  consumerDefaults?: ConsumerDefaults;
  /** Envelope encryption of data at rest (secrets, contents): seal before storing, open after reading. */
  keyring: Keyring;
  /** Starts tenant offboarding sagas (the runtime's; absent where none was given, e.g. unit tests). */
  offboarding?: TenantOffboardingStarter;
}

/** One API of a service with its implementation; build it with {@link handle}. */
export interface ApiHandler {
  api: DescService;
  impl: Partial<ServiceImpl<DescService>>;
}

/**
 * Pairs an API descriptor with its implementation, type-checked against the contract. Methods
 * the implementation leaves out answer UNIMPLEMENTED, so every method stays visible to
 * reflection from day one.
 */
export function handle<S extends DescService>(api: S, impl: Partial<ServiceImpl<S>>): ApiHandler {
  return { api, impl: impl as Partial<ServiceImpl<DescService>> };
}

/**
 * A durable consumer as a service declares it: the kernel subscribes it in the background
 * (retrying while the bus is away), reports it in readiness, and drains it on shutdown.
 * `db` and `schema` default to the service's database and schema.
 */
export type ConsumerSpec = ConsumerOptions;

/** Background work the kernel runs every `intervalMs` and awaits on shutdown (sweeps). */
export interface PeriodicTask {
  /** Named in logs when a run fails. */
  name: string;
  intervalMs: number;
  run(): Promise<unknown>;
}

/** What a service's `build` returns: the kernel mounts, starts and stops all of it. */
export interface ServiceParts {
  /** One implementation per API the service serves (every API of `apis`). */
  handlers: readonly ApiHandler[];
  /** Durable consumers (idempotent by event id, in the service's own transactions). */
  consumers?: readonly ConsumerSpec[];
  /** Periodic sweeps. */
  tasks?: readonly PeriodicTask[];
  /** Extra readiness beyond the consumers' (e.g. workers that must subscribe first). */
  readiness?: ReadinessCheck;
  /** Stops the service's own background work; runs after the tasks stopped, before consumers drain. */
  shutdown?: () => Promise<void>;
  /** Plain HTTP endpoints beside the RPCs (`POST /ingress`, `/scim/v2`, ...), served by every process hosting the service. */
  httpRoutes?: readonly HttpRoute[];
}

/** One role of a service: a deployable unit (`nexus serve --service <role>`) and the APIs it serves. */
export interface ServiceRole {
  apis: readonly DescService[];
}

/** The description of one service, the single export of its `server.ts`. */
export interface ServiceSpec {
  /** The service's name: its folder and the owner of its schemas, e.g. "auth". */
  name: string;
  /** Every protobuf service it serves. */
  apis: readonly DescService[];
  /**
   * The roles it can be deployed as, by deployable name. Default: one role named after the
   * service serving every API. A bounded context with two roles (knowledge: ingestion with its
   * workers, retrieval) lists both; a service hosted in another's process (audit in metering's)
   * names that role.
   */
  roles?: Partial<Record<ServiceName, ServiceRole>>;
  /** Its schemas' forward-only migrations, applied in order whenever one of its roles runs. */
  migrations: readonly SchemaMigrations[];
  /** The services it calls over gRPC (their NEXUS_<SVC>_URL must be set when not hosted here). */
  peers?: readonly ServiceName[];
  /**
   * How it deletes an offboarded tenant's rows from its schemas (the offboarding saga's
   * `delete-data` step runs every service's, in registry order). Idempotent. A service that
   * holds tenant rows declares one; what it keeps on purpose goes in the deleter's `keeps`.
   */
  dataDeleters?: readonly TenantDataDeleter[];
  /** Assembles the service in a process; must not listen or block (background work starts here). */
  build(ctx: ServiceContext): ServiceParts;
}

/** A schema and its migrations, oldest first (a function when they depend on the database, e.g. pgvector). */
export interface SchemaMigrations {
  schema: string;
  migrations: readonly Migration[] | ((db: Database) => readonly Migration[]);
}

/** A validated {@link ServiceSpec}: roles filled in. */
export interface ServiceDefinition extends Omit<ServiceSpec, "roles"> {
  roles: Partial<Record<ServiceName, ServiceRole>>;
}

/**
 * Defines a service: the one kernel helper every `services/<svc>/server.ts` uses. It checks the
 * description (every role's API is one of the service's) and fills in the default role.
 */
export function defineService(spec: ServiceSpec): ServiceDefinition {
  const roles = spec.roles ?? ({ [spec.name]: { apis: spec.apis } } as Partial<Record<ServiceName, ServiceRole>>);
  const known = new Set(spec.apis.map((a) => a.typeName));
  for (const [role, r] of Object.entries(roles)) {
    for (const api of r?.apis ?? []) {
      if (!known.has(api.typeName))
        throw new Error(`service ${spec.name}: role ${role} serves ${api.typeName}, which is not among its apis`);
    }
  }
  return { ...spec, roles };
}
