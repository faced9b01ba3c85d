import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { GovernanceService } from "../../gen/nexus/governance/v1/governance_service_pb.js";
import { IdentityService } from "../../gen/nexus/identity/v1/identity_service_pb.js";
import { createEventStoreAccessRecorder } from "../kernel/authz/access-recorder.js";
import { createLoggedAuthAttemptLimiter } from "../kernel/authz/auth-attempt-limiter.js";
import { createClientAddressResolver } from "../kernel/authz/client-address.js";
import { createMemoryBucketStore, createPostgresBucketStore } from "../kernel/limits/bucket-store.js";
import { loadMeshToken } from "../kernel/limits/mesh-token.js";
import { defineService } from "../kernel/service/index.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { tenantAggregate } from "./auth-aggregates.js";
import { authSettingsFromConfig } from "./auth-settings.js";
import { consoleSessionRoutes } from "./console-session-routes.js";
import { createAuthParts } from "./create-auth-application.js";
import { GovernanceServiceHandlers } from "./governance-handlers.js";
import { type AuthenticateAttempts, AuthServiceHandlers } from "./handlers.js";
import { IdentityServiceHandlers } from "./identity-handlers.js";
import { refreshKeyExpiryMetric } from "./key-expiry-metric.js";
import { authMigrations } from "./migrations.js";
import { authRoutes, governanceRoutes, identityRoutes } from "./routes.js";
import { scimRoutes } from "./scim-routes.js";
import { signInRoutes } from "./sign-in-routes.js";
import { authTenantData } from "./tenant-data.js";
import { TenantHistory } from "./tenant-history.js";

/** How often the auth service closes ended rotation graces (ApiKeyRevoked "rotated"). */
const ROTATION_SWEEP_INTERVAL_MS = 5_000;
/** How often console sessions that ended are deleted. */
const CONSOLE_SESSION_SWEEP_INTERVAL_MS = 600_000;
/** How often the count of keys expiring soon is refreshed. */
const KEY_EXPIRY_INTERVAL_MS = 60_000;

/**
 * The auth service (`nexus.auth.v1.AuthService`): tenants, plans, entitlements, API keys and
 * Authenticate (API keys and the tenants' OpenID access tokens); and people
 * (`nexus.identity.v1.IdentityService`: users, memberships, identity providers); data governance
 * (`nexus.governance.v1.GovernanceService`: legal holds, retention policies and reports), plus a sweep that records the end of rotation graces and a count of the keys
 * that expire within 7 days (`nexus_api_keys_expiring_soon`), and the web console's sign-in endpoint
 * (`/auth/session`) beside OpenID sign-in (`/auth/oidc/...`). `nexus dev` and
 * `nexus serve --service auth` mount the same definition.
 */
export const authService = defineService({
  name: "auth",
  apis: [AuthService, IdentityService, GovernanceService],
  migrations: [authMigrations],
  dataDeleters: [authTenantData],
  build(ctx) {
    const settings = authSettingsFromConfig(ctx.config);
    const { app, identity, signIn, scim } = createAuthParts({
      db: ctx.db,
      logger: ctx.logger,
      clock: ctx.clock,
      settings,
      keyring: ctx.keyring,
    });
    const refreshExpiry = () => refreshKeyExpiryMetric(ctx.db, ctx.clock(), ctx.logger);
    // A first reading at start, so the gauge exists before the first interval passes.
    void refreshExpiry().catch((err: unknown) => ctx.logger.debug({ err }, "first key expiry count failed; the task retries"));
    // Temporal-query limits are shared by replicas on PostgreSQL (platform.rate_buckets).
    const buckets = ctx.db.dialect === "postgres" ? createPostgresBucketStore(ctx.db) : createMemoryBucketStore();
    const history = new TenantHistory({
      db: ctx.db,
      tenants: tenantAggregate(createPostgresAuthStore(ctx.db).tenants),
      buckets,
      logger: ctx.logger,
    });
    // Direct callers of the public Authenticate and the console's sign-in form (docs/security.md).
    const limiter = createLoggedAuthAttemptLimiter(
      {
        burst: ctx.config.authAttemptBurst,
        ratePerSecond: ctx.config.authAttemptRatePerSecond,
        maxEntries: ctx.config.authAttemptMaxEntries,
      },
      ctx.logger,
    );
    let meshToken: Promise<string> | undefined;
    const attempts: AuthenticateAttempts = {
      limiter,
      recorder: createEventStoreAccessRecorder({ db: ctx.db, logger: ctx.logger }),
      clientAddress: createClientAddressResolver(ctx.config.trustedProxies),
      meshToken: () => {
        if (meshToken === undefined) {
          const loading = loadMeshToken(ctx.db);
          // A failed read is retried on the next call.
          loading.catch(() => {
            if (meshToken === loading) meshToken = undefined;
          });
          meshToken = loading;
        }
        return meshToken;
      },
    };
    return {
      handlers: [
        authRoutes(new AuthServiceHandlers(app, history, attempts)),
        identityRoutes(new IdentityServiceHandlers(identity, scim)),
        governanceRoutes(new GovernanceServiceHandlers(ctx.db, ctx.keyring)),
      ],
      // The web console's sign-in and sign-out (docs/console.md), and OpenID sign-in (docs/identity.md).
      httpRoutes: [
        ...consoleSessionRoutes({
          app,
          ttlMs: ctx.config.consoleSessionTtlSeconds * 1000,
          logger: ctx.logger,
          endSignInSession: (token) => signIn.signOut(token),
          attempts,
        }),
        ...signInRoutes(signIn, ctx.logger),
        // SCIM 2.0 provisioning of the tenant whose SCIM token is presented (docs/identity.md).
        ...scimRoutes(scim, ctx.logger, attempts.clientAddress),
      ],
      shutdown: async () => buckets.close(),
      tasks: [
        { name: "console session sweep", intervalMs: CONSOLE_SESSION_SWEEP_INTERVAL_MS, run: () => app.sweepEndedConsoleSessions() },
        { name: "rotation sweep", intervalMs: ROTATION_SWEEP_INTERVAL_MS, run: () => app.sweepEndedRotations() },
        { name: "key expiry count", intervalMs: KEY_EXPIRY_INTERVAL_MS, run: refreshExpiry },
      ],
    };
  },
});
