import type { Logger } from "pino";
import type { Authenticator } from "../kernel/authz/authenticator.js";
import { type MeshAuthz, startMeshAuthz } from "../kernel/authz/mesh-authz.js";
import { createRemoteAuthenticator } from "../kernel/authz/remote-authenticator.js";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import type { EventBus } from "../kernel/events/ports.js";
import type { Peers } from "../kernel/service/index.js";
import { authSettingsFromConfig } from "./auth-settings.js";
import { installConfiguredPlatformKey } from "./bootstrap.js";
import { createAuthApplication } from "./create-auth-application.js";

/** Options of {@link startMeshSecurity}. */
export interface MeshSecurityOptions {
  config: NexusConfig;
  db: Database;
  bus: EventBus;
  clock: () => Date;
  logger: Logger;
  peers: Peers;
  /** This process hosts the auth service (nexus dev, nexus serve --service auth). */
  hostsAuth: boolean;
}

/**
 * The security of a Nexus process (called by startNexus, after migrations): in a process that
 * hosts auth, keys are checked against the auth domain directly and the configured bootstrap
 * key (NEXUS_BOOTSTRAP_KEY_*) is installed; elsewhere through AuthService.Authenticate at
 * NEXUS_AUTH_URL (checked now, so a missing URL fails the start, not the first call).
 */
export async function startMeshSecurity(options: MeshSecurityOptions): Promise<MeshAuthz> {
  const { config, db, logger } = options;
  let authenticator: Authenticator;
  if (options.hostsAuth) {
    const app = createAuthApplication({
      db,
      logger: logger.child({ component: "authn" }),
      clock: options.clock,
      settings: authSettingsFromConfig(config),
    });
    const installed = await installConfiguredPlatformKey(app, config);
    if (installed === "created") logger.info({ key_id: config.bootstrapKeyId }, "installed the configured bootstrap platform key");
    authenticator = { authenticate: (key, context) => app.authenticate(key, context) };
  } else {
    options.peers.url("auth");
    authenticator = createRemoteAuthenticator({ transport: options.peers.transport("auth") });
  }
  return startMeshAuthz({
    authenticator,
    bus: options.bus,
    db,
    logger,
    clock: options.clock,
    cacheTtlMs: config.authCacheTtlMs,
    cacheMaxEntries: config.authCacheMaxEntries,
    authAttempts: {
      burst: config.authAttemptBurst,
      ratePerSecond: config.authAttemptRatePerSecond,
      maxEntries: config.authAttemptMaxEntries,
    },
    ...(config.trustedProxies ? { trustedProxies: config.trustedProxies } : {}),
  });
}
