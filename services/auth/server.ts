import type { Logger } from "pino";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { createEventStoreAccessRecorder } from "../kernel/authz/access-recorder.js";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import type { ServiceModule } from "../kernel/server/service-module.js";
import type { ServiceDeps } from "../runtime/service-deps.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { AuthApplication } from "./auth-application.js";
import { authSettingsFromConfig, type AuthSettings } from "./auth-settings.js";
import { AuthServiceHandlers } from "./handlers.js";
import { migrateAuth } from "./migrations.js";
import { registerAuthRoutes } from "./routes.js";

/** How often the auth module closes ended rotation graces (ApiKeyRevoked "rotated"). */
export const ROTATION_SWEEP_INTERVAL_MS = 5_000;

/** Options of {@link createAuthApplication}. */
export interface CreateAuthApplicationOptions {
  db: Database;
  logger: Logger;
  clock: () => Date;
  settings: AuthSettings;
}

/** The auth use cases on a database (store: auth schema; events: platform.events). */
export function createAuthApplication(options: CreateAuthApplicationOptions): AuthApplication {
  return new AuthApplication({
    store: createPostgresAuthStore(options.db),
    settings: options.settings,
    recorder: createEventStoreAccessRecorder({ db: options.db, logger: options.logger }),
    clock: options.clock,
    logger: options.logger,
  });
}

/** The auth settings a configuration asks for. */
export function authSettingsOf(config: NexusConfig): AuthSettings {
  return authSettingsFromConfig(config);
}

/**
 * The auth service (`nexus.auth.v1.AuthService`) as a mountable module: tenants, plans,
 * entitlements, API keys and Authenticate, plus a background sweep that records the end of
 * rotation graces. Builds without listening; `nexus dev` and `nexus serve --service auth`
 * mount the same module.
 */
export function build(deps: ServiceDeps): ServiceModule {
  const app = createAuthApplication({ db: deps.db, logger: deps.logger, clock: deps.clock, settings: authSettingsOf(deps.config) });
  const handlers = new AuthServiceHandlers(app);
  let sweeping: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    sweeping = app.sweepEndedRotations().catch((err: unknown) => deps.logger.warn({ err }, "rotation sweep failed"));
  }, ROTATION_SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    name: AuthService.typeName,
    register: (router) => registerAuthRoutes(router, handlers),
    async shutdown() {
      clearInterval(timer);
      await sweeping;
    },
  };
}

export { migrateAuth };
