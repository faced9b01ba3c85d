import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { authSettingsFromConfig } from "./auth-settings.js";
import { createAuthApplication } from "./create-auth-application.js";
import { AuthServiceHandlers } from "./handlers.js";
import { authMigrations } from "./migrations.js";
import { authRoutes } from "./routes.js";

/** How often the auth service closes ended rotation graces (ApiKeyRevoked "rotated"). */
const ROTATION_SWEEP_INTERVAL_MS = 5_000;

/**
 * The auth service (`nexus.auth.v1.AuthService`): tenants, plans, entitlements, API keys and
 * Authenticate, plus a sweep that records the end of rotation graces. `nexus dev` and
 * `nexus serve --service auth` mount the same definition.
 */
export const authService = defineService({
  name: "auth",
  apis: [AuthService],
  migrations: [authMigrations],
  build(ctx) {
    const app = createAuthApplication({ db: ctx.db, logger: ctx.logger, clock: ctx.clock, settings: authSettingsFromConfig(ctx.config) });
    return {
      handlers: [authRoutes(new AuthServiceHandlers(app))],
      tasks: [{ name: "rotation sweep", intervalMs: ROTATION_SWEEP_INTERVAL_MS, run: () => app.sweepEndedRotations() }],
    };
  },
});
