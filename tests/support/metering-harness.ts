/**
 * Shared set-up of the metering and audit suites: real databases and buses, our real
 * modules (built like `nexus serve` builds them), and principals placed in the handler
 * context the way the authentication gate places them for an API key.
 */
import { randomUUID } from "node:crypto";
import { createContextValues, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { type Logger, pino } from "pino";
import type { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import type { AuditApplication } from "../../services/audit/audit-application.js";
import type { AuditHandler } from "../../services/audit/audit-handler.js";
import { createAuditParts } from "../../services/audit/audit-parts.js";
import { auditService } from "../../services/audit/server.js";
import { effectiveEntitlements, principalEntitlements } from "../../services/kernel/authz/plans.js";
import { loadConfig } from "../../services/kernel/config.js";
import {
  type PlanName,
  type PlatformPrincipal,
  type Principal,
  principalKey,
  type TenantPrincipal,
} from "../../services/kernel/context.js";
import type { Database } from "../../services/kernel/db/ports.js";
import type { BackoffOptions, EventBus } from "../../services/kernel/events/ports.js";
import { createKeyring, newMasterKeyLine, parseMasterKeys } from "../../services/kernel/keyring/index.js";
import { type MountedService, migrateService, mountService, type ServiceContext } from "../../services/kernel/service/index.js";
import type { MeteringApplication } from "../../services/metering/metering-application.js";
import type { MeteringHandler } from "../../services/metering/metering-handler.js";
import { createMeteringParts, type MeteringPartsOptions } from "../../services/metering/metering-parts.js";
import { meteringService } from "../../services/metering/server.js";
import { createPeers } from "../../services/runtime/peers.js";

/** A tenant member's principal with the plan's real entitlements. */
export function tenantPrincipal(tenantId: string, plan: PlanName = "pro", role: TenantPrincipal["role"] = "admin"): TenantPrincipal {
  return {
    kind: "tenant",
    keyId: `key-${tenantId}-${role}`,
    name: `${tenantId} ${role} key`,
    tenantId,
    tenantSlug: tenantId,
    role,
    plan,
    entitlements: principalEntitlements(effectiveEntitlements(plan)),
  };
}

/** A platform operator's principal. */
export function platformPrincipal(): PlatformPrincipal {
  return { kind: "platform", keyId: "key-platform", name: "platform test key" };
}

/** A handler context carrying `principal` (none: an unauthenticated call). */
export function contextFor(
  principal: Principal | undefined,
  service: typeof MeteringService | typeof AuditService = MeteringService,
): HandlerContext {
  const values = createContextValues();
  if (principal) values.set(principalKey, principal);
  const method = Object.values(service.method)[0]!;
  return createHandlerContext({
    service,
    method,
    protocolName: "connect",
    requestMethod: "POST",
    url: "http://test.invalid/",
    contextValues: values,
  });
}

/** A quiet logger (NEXUS_TEST_LOG_LEVEL=debug shows the services' logs). */
export function testLogger(): Logger {
  return pino({ level: process.env.NEXUS_TEST_LOG_LEVEL ?? "silent" });
}

/** A clock tests can move forward. */
export interface TestClock {
  now: () => Date;
  advance(ms: number): void;
  set(d: Date): void;
}

/** A clock starting at `start` (default: the wall clock at creation) that only moves when told. */
export function testClock(start = new Date()): TestClock {
  let t = start.getTime();
  return { now: () => new Date(t), advance: (ms) => void (t += ms), set: (d) => void (t = d.getTime()) };
}

/** Consumer settings of a module under test. */
export interface ConsumerTestOptions {
  /** Retry delays of the consumers (default the bus's: 1 s doubling to 5 min). */
  backoff?: BackoffOptions;
  /** Failed deliveries before the DLQ. Default NEXUS_MAX_DELIVER. */
  maxDeliver?: number;
}

/** Metering under test: its mounted module and the application and handler inside. */
export interface Metering {
  module: MountedService;
  app: MeteringApplication;
  handler: MeteringHandler;
}

/** The audit trail under test. */
export interface Audit {
  module: MountedService;
  app: AuditApplication;
  handler: AuditHandler;
}

/** The service context of a module under test (no peers: remote lookups are off). */
export function serviceContext(
  db: Database,
  bus: EventBus,
  clock: () => Date = () => new Date(),
  consumers: ConsumerTestOptions = {},
): ServiceContext {
  const config = loadConfig({});
  return {
    config,
    logger: testLogger(),
    db,
    bus,
    clock,
    // A fresh test master key (tables migrated by whoever seals first: keyringMigrations).
    keyring: createKeyring({ db, masterKeys: parseMasterKeys(newMasterKeyLine(1), "test key") }),
    peers: createPeers(config, [], () => undefined),
    roles: new Set(["metering"]),
    consumerDefaults: consumers,
  };
}

/** Migrates and mounts metering like `nexus serve --service metering` does; waits for its consumers. */
export async function openMetering(
  db: Database,
  bus: EventBus,
  clock?: () => Date,
  options: MeteringPartsOptions & ConsumerTestOptions = {},
): Promise<Metering> {
  await bus.start();
  await migrateService(meteringService, db);
  const ctx = serviceContext(db, bus, clock, options);
  const parts = createMeteringParts(ctx, { directory: null, ...options });
  const module = mountService(meteringService, ctx, parts);
  await module.started();
  return { module, app: parts.app, handler: parts.handler };
}

/** Migrates and mounts the audit trail; waits for its consumer. */
export async function openAudit(db: Database, bus: EventBus, options: ConsumerTestOptions = {}): Promise<Audit> {
  await bus.start();
  await migrateService(auditService, db);
  const ctx = serviceContext(db, bus, undefined, options);
  const parts = createAuditParts(ctx);
  const module = mountService(auditService, ctx, parts);
  await module.started();
  return { module, app: parts.app, handler: parts.handler };
}

/** A tenant id no other suite uses. */
export function uniqueTenant(): string {
  return `t-${randomUUID().slice(0, 12)}`;
}
