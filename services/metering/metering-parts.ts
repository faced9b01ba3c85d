import { retentionTask, subjectRequestTask } from "../kernel/governance/index.js";
import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { createAuthTenantDirectory } from "./adapters/auth-directory.js";
import { createPostgresMeteringStore } from "./adapters/postgres.js";
import { BILLING_WEBHOOK_CONSUMER, BILLING_WEBHOOK_SUBJECT, billingWebhookHandler } from "./billing-webhook.js";
import { MeteringApplication } from "./metering-application.js";
import {
  RUN_USAGE_CONSUMER,
  RUN_USAGE_SUBJECT,
  runUsageHandler,
  TENANT_PLANS_CONSUMER,
  TENANT_PLANS_SUBJECT,
  tenantPlansHandler,
} from "./metering-consumers.js";
import { MeteringHandler } from "./metering-handler.js";
import { type MeteringSettings, meteringSettingsFromConfig } from "./metering-settings.js";
import type { TenantDirectory } from "./ports.js";
import { meteringRoutes } from "./routes.js";
import { meteringSubjectContributor } from "./subject-data.js";
import { usageRetention } from "./usage-retention.js";

/** Options of {@link createMeteringParts} beyond the service context. */
export interface MeteringPartsOptions {
  /** Default: from `ctx.config`. */
  settings?: MeteringSettings;
  /** Default: AuthService over `ctx.peers`; `null` turns remote lookups off. */
  directory?: TenantDirectory | null;
}

/** Metering's parts, with the application and handler inside (tests call them directly). */
export interface MeteringParts extends ServiceParts {
  app: MeteringApplication;
  handler: MeteringHandler;
}

/**
 * Assembles metering: the Postgres store, the application, the handler, the durable consumers
 * (run events → usage, auth events → plans, quota events → billing webhook when configured)
 * and the reservation-expiry sweep. The kernel starts and stops them (server.ts).
 */
export function createMeteringParts(ctx: ServiceContext, options: MeteringPartsOptions = {}): MeteringParts {
  const settings = options.settings ?? meteringSettingsFromConfig(ctx.config);
  const store = createPostgresMeteringStore(ctx.db);
  const app = new MeteringApplication({ store, settings, clock: ctx.clock, logger: ctx.logger });
  const directory =
    options.directory === null ? undefined : (options.directory ?? createAuthTenantDirectory(() => ctx.peers.transport("auth")));
  const handler = new MeteringHandler({ app, store, directory, clock: ctx.clock });
  const warn = (msg: string, context: object) => ctx.logger.warn(context, msg);
  return {
    app,
    handler,
    handlers: [meteringRoutes(handler)],
    consumers: [
      { name: RUN_USAGE_CONSUMER, subject: RUN_USAGE_SUBJECT, handler: runUsageHandler(app, store, warn) },
      { name: TENANT_PLANS_CONSUMER, subject: TENANT_PLANS_SUBJECT, handler: tenantPlansHandler(app, store) },
      ...(settings.billingWebhook
        ? [
            {
              name: BILLING_WEBHOOK_CONSUMER,
              subject: BILLING_WEBHOOK_SUBJECT,
              // Deliveries after a restart only: a new receiver is not flooded with history.
              deliverFrom: "new" as const,
              handler: billingWebhookHandler({ settings: settings.billingWebhook, clock: ctx.clock }),
            },
          ]
        : []),
    ],
    tasks: [
      { name: "reservation expiry sweep", intervalMs: settings.expirySweepIntervalMs, run: () => app.sweepExpiredReservations() },
      // The tenants' "usage" retention policies (docs/governance.md#retention).
      retentionTask({ db: ctx.db, targets: [usageRetention()], intervalMs: ctx.config.retentionIntervalMs, logger: ctx.logger }),
      // The "usage" part of data-subject requests (docs/governance.md#data-subject-requests).
      subjectRequestTask({
        db: ctx.db,
        keyring: ctx.keyring,
        contributor: meteringSubjectContributor(),
        intervalMs: ctx.config.subjectRequestIntervalMs,
        logger: ctx.logger,
      }),
    ],
  };
}
