import type { ConnectRouter } from "@connectrpc/connect";
import type { Logger } from "pino";
import type { ServiceName } from "../config.js";
import { migrate } from "../db/migrate.js";
import type { Database } from "../db/ports.js";
import { startBackgroundConsumers } from "../events/background-consumers.js";
import type { ReadinessResult, ServiceModule } from "../server/service-module.js";
import type { SchemaMigrations, ServiceContext, ServiceDefinition, ServiceParts } from "./define-service.js";

/** A mounted service: the server's module, plus a promise tests await for its consumers. */
export interface MountedService extends ServiceModule {
  /** Resolves once every consumer of the service subscribed. */
  started(): Promise<void>;
  /** The service's own readiness, then its consumers'. */
  readiness(): Promise<ReadinessResult>;
  /** Stops the tasks (waiting for running ones), then the service's own work, then drains the consumers. */
  shutdown(): Promise<void>;
}

/** The roles of `definition` that `hosted` names. */
export function hostedRoles(definition: ServiceDefinition, hosted: Iterable<ServiceName>): ServiceName[] {
  const wanted = new Set(hosted);
  return (Object.keys(definition.roles) as ServiceName[]).filter((r) => wanted.has(r));
}

/** Applies the schemas' migrations in order (forward-only, advisory-locked per schema; idempotent). */
export async function migrateSchemas(db: Database, schemas: readonly SchemaMigrations[], logger?: Logger): Promise<void> {
  for (const m of schemas) {
    const migrations = typeof m.migrations === "function" ? m.migrations(db) : m.migrations;
    await migrate(db, { schema: m.schema, migrations, ...(logger ? { logger } : {}) });
  }
}

/** Applies every migration of the service's schemas. */
export function migrateService(definition: ServiceDefinition, db: Database, logger?: Logger): Promise<void> {
  return migrateSchemas(db, definition.migrations, logger);
}

/**
 * Builds a defined service in this process and wraps it as the kernel server's module: routes
 * for the APIs of the hosted roles, its consumers subscribed in the background (with the
 * service's database and first schema as their home), its periodic tasks scheduled (one run
 * of each at a time), readiness
 * combining the consumers' with its own, and a shutdown that stops tasks, then the service's
 * own work, then drains the consumers. `parts` defaults to the definition's `build(ctx)`;
 * tests pass parts they assembled themselves to keep a handle on the application inside.
 */
export function mountService(
  definition: ServiceDefinition,
  ctx: ServiceContext,
  parts: ServiceParts = definition.build(ctx),
): MountedService {
  const roles = hostedRoles(definition, ctx.roles);
  const apis = new Set(roles.flatMap((r) => definition.roles[r]?.apis ?? []).map((a) => a.typeName));
  const served = parts.handlers.filter((h) => apis.has(h.api.typeName));
  const missing = [...apis].filter((a) => !served.some((h) => h.api.typeName === a));
  if (missing.length > 0) throw new Error(`service ${definition.name} has no handler for ${missing.join(", ")}`);
  const schema = definition.migrations[0]?.schema;
  const consumers = startBackgroundConsumers(
    ctx.bus,
    ctx.logger,
    (parts.consumers ?? []).map((c) => ({
      db: ctx.db,
      ...(schema ? { schema } : {}),
      maxDeliver: ctx.consumerDefaults?.maxDeliver ?? ctx.config.maxDeliver,
      ...(ctx.consumerDefaults?.backoff ? { backoff: ctx.consumerDefaults.backoff } : {}),
      ...c,
    })),
  );
  // One run per task at a time: a tick that comes while the previous run is still going is
  // skipped (a slow sweep must not stack up copies of itself). A run that throws, even before
  // returning its promise, is logged and the task keeps its schedule.
  const running = new Map<string, Promise<void>>();
  const timers = (parts.tasks ?? []).map((task) => {
    const timer = setInterval(() => {
      if (running.has(task.name)) return;
      const run = Promise.resolve()
        .then(() => task.run())
        .then(
          () => undefined,
          (err: unknown) => ctx.logger.warn({ err, task: task.name }, `${task.name} failed`),
        )
        .finally(() => running.delete(task.name));
      running.set(task.name, run);
    }, task.intervalMs);
    timer.unref();
    return timer;
  });
  return {
    // Health names every registered API; the module's own name is its first API's.
    name: served[0]?.api.typeName ?? definition.name,
    register(router: ConnectRouter) {
      for (const h of served) router.service(h.api, h.impl);
    },
    ...(parts.httpRoutes ? { httpRoutes: parts.httpRoutes } : {}),
    started: () => consumers.started(),
    async readiness(): Promise<ReadinessResult> {
      const own = parts.readiness ? await parts.readiness() : { ready: true };
      if (!own.ready) return own;
      return consumers.readiness();
    },
    async shutdown() {
      for (const t of timers) clearInterval(t);
      await Promise.allSettled([...running.values()]);
      try {
        await parts.shutdown?.();
      } finally {
        // Drained even when the service's own shutdown failed: no consumer outlives the module.
        await consumers.stop();
      }
    },
  };
}
