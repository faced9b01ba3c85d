import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import type { BackoffOptions } from "../kernel/events/ports.js";
import type { ServiceModule } from "../kernel/server/service-module.js";
import { startBackgroundConsumers, type BackgroundConsumers } from "../kernel/events/background-consumers.js";
import type { ServiceDeps } from "../runtime/service-deps.js";
import { createPostgresAuditStore } from "./adapters/postgres.js";
import { AuditApplication } from "./audit-application.js";
import { AUDIT_TRAIL_CONSUMER, AUDIT_TRAIL_SUBJECT, auditTrailHandler } from "./audit-consumer.js";
import { AuditHandler } from "./audit-handler.js";
import { AUDIT_SCHEMA, migrateAudit } from "./migrations.js";
import { registerAuditRoutes } from "./routes.js";

/** Options of {@link createAudit}. */
export interface CreateAuditOptions {
  /** Retry delays of the consumer (default the bus's). */
  backoff?: BackoffOptions;
  /** Default NEXUS_MAX_DELIVER. */
  maxDeliver?: number;
}

/** The audit module with its parts, for tests and the registry. */
export interface Audit {
  module: ServiceModule;
  app: AuditApplication;
  handler: AuditHandler;
  consumers: BackgroundConsumers;
}

/** Assembles the audit trail: store, application, handler and its durable consumer. */
export function createAudit(deps: ServiceDeps, options: CreateAuditOptions = {}): Audit {
  const store = createPostgresAuditStore(deps.db);
  const app = new AuditApplication({
    store,
    extraRedactKeys: deps.config.auditExtraRedactKeys ?? [],
    clock: deps.clock,
    logger: deps.logger,
  });
  const handler = new AuditHandler(app);
  const consumers = startBackgroundConsumers(deps.bus, deps.logger, [
    {
      name: AUDIT_TRAIL_CONSUMER,
      subject: AUDIT_TRAIL_SUBJECT,
      schema: AUDIT_SCHEMA,
      handler: auditTrailHandler(app, store),
      maxDeliver: options.maxDeliver ?? deps.config.maxDeliver,
      ...(options.backoff ? { backoff: options.backoff } : {}),
    },
  ]);
  return {
    module: {
      name: AuditService.typeName,
      register: (router) => registerAuditRoutes(router, handler),
      readiness: () => consumers.readiness(),
      shutdown: () => consumers.stop(),
    },
    app,
    handler,
    consumers,
  };
}

/**
 * The audit service (`nexus.audit.v1.AuditService`) as a mountable module: the hash-chained,
 * append-only audit trail built from every service's domain events. Hosted by the metering
 * process (see services/runtime/service-registry.ts).
 */
export function build(deps: ServiceDeps): ServiceModule {
  return createAudit(deps).module;
}

export { migrateAudit };
