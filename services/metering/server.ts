import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import type { BackoffOptions } from "../kernel/events/ports.js";
import type { ServiceModule } from "../kernel/server/service-module.js";
import type { ServiceDeps } from "../runtime/service-deps.js";
import { createAuthTenantDirectory } from "./adapters/auth-directory.js";
import { createPostgresMeteringStore } from "./adapters/postgres.js";
import { startBackgroundConsumers, type BackgroundConsumers } from "../kernel/events/background-consumers.js";
import { BILLING_WEBHOOK_CONSUMER, BILLING_WEBHOOK_SUBJECT, billingWebhookHandler } from "./billing-webhook.js";
import { MeteringApplication } from "./metering-application.js";
import {
  RUN_USAGE_CONSUMER,
  RUN_USAGE_SUBJECT,
  TENANT_PLANS_CONSUMER,
  TENANT_PLANS_SUBJECT,
  runUsageHandler,
  tenantPlansHandler,
} from "./metering-consumers.js";
import { MeteringHandler } from "./metering-handler.js";
import { meteringSettingsFromConfig, type MeteringSettings } from "./metering-settings.js";
import { METERING_SCHEMA, migrateMetering } from "./migrations.js";
import type { TenantDirectory } from "./ports.js";
import { registerMeteringRoutes } from "./routes.js";

/** Options of {@link createMetering} beyond the service deps. */
export interface CreateMeteringOptions {
  /** Default: from `deps.config`. */
  settings?: MeteringSettings;
  /** Default: AuthService over `deps.peers`; `null` turns remote lookups off. */
  directory?: TenantDirectory | null;
  /** Retry delays of the consumers (default the bus's: 1 s doubling to 5 min). */
  backoff?: BackoffOptions;
  /** Failed deliveries before the DLQ. Default NEXUS_MAX_DELIVER. */
  maxDeliver?: number;
}

/** The metering module with its parts, for tests and the registry. */
export interface Metering {
  module: ServiceModule;
  app: MeteringApplication;
  handler: MeteringHandler;
  consumers: BackgroundConsumers;
}

/**
 * Assembles metering: the Postgres store, the application, the handler, the durable consumers
 * (run events → usage, auth events → plans, quota events → billing webhook when configured)
 * and the reservation-expiry sweep. Nothing listens here.
 */
export function createMetering(deps: ServiceDeps, options: CreateMeteringOptions = {}): Metering {
  const settings = options.settings ?? meteringSettingsFromConfig(deps.config);
  const store = createPostgresMeteringStore(deps.db);
  const app = new MeteringApplication({ store, settings, clock: deps.clock, logger: deps.logger });
  const directory =
    options.directory === null ? undefined : (options.directory ?? createAuthTenantDirectory(() => deps.peers.transport("auth")));
  const handler = new MeteringHandler({ app, store, directory, clock: deps.clock });
  const warn = (msg: string, ctx: object) => deps.logger.warn(ctx, msg);
  const common = {
    schema: METERING_SCHEMA,
    maxDeliver: options.maxDeliver ?? deps.config.maxDeliver,
    ...(options.backoff ? { backoff: options.backoff } : {}),
  };
  const consumers = startBackgroundConsumers(deps.bus, deps.logger, [
    { ...common, name: RUN_USAGE_CONSUMER, subject: RUN_USAGE_SUBJECT, handler: runUsageHandler(app, store, warn) },
    { ...common, name: TENANT_PLANS_CONSUMER, subject: TENANT_PLANS_SUBJECT, handler: tenantPlansHandler(app, store) },
    ...(settings.billingWebhook
      ? [
          {
            ...common,
            name: BILLING_WEBHOOK_CONSUMER,
            subject: BILLING_WEBHOOK_SUBJECT,
            // Deliveries after a restart only: a new receiver is not flooded with history.
            deliverFrom: "new" as const,
            handler: billingWebhookHandler({ settings: settings.billingWebhook, clock: deps.clock }),
          },
        ]
      : []),
  ]);
  let sweeping: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    sweeping = app.sweepExpiredReservations().catch((err: unknown) => deps.logger.warn({ err }, "reservation expiry sweep failed"));
  }, settings.expirySweepIntervalMs);
  timer.unref();
  const module: ServiceModule = {
    name: MeteringService.typeName,
    register: (router) => registerMeteringRoutes(router, handler),
    readiness: () => consumers.readiness(),
    async shutdown() {
      clearInterval(timer);
      await sweeping;
      await consumers.stop();
    },
  };
  return { module, app, handler, consumers };
}

/**
 * The metering service (`nexus.metering.v1.MeteringService`) as a mountable module: usage
 * records from run events, quotas with atomic reservations, usage reports. Builds without
 * listening; `nexus dev` and `nexus serve --service metering` mount the same module.
 */
export function build(deps: ServiceDeps): ServiceModule {
  return createMetering(deps).module;
}

export { migrateMetering };
