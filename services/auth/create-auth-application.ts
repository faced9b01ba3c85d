import type { Logger } from "pino";
import { createEventStoreAccessRecorder } from "../kernel/authz/access-recorder.js";
import type { Database } from "../kernel/db/ports.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { AuthApplication } from "./auth-application.js";
import type { AuthSettings } from "./auth-settings.js";
import { TokenAuthenticator } from "./token-authentication.js";

/** Options of {@link createAuthApplication}. */
export interface CreateAuthApplicationOptions {
  db: Database;
  logger: Logger;
  clock: () => Date;
  settings: AuthSettings;
}

/**
 * The auth use cases on a database (store: auth schema; events: platform.events). The service
 * (server.ts), the authentication gate of a process hosting auth (mesh-security.ts), the CLI's
 * bootstrap and tests all build it here.
 */
export function createAuthApplication(options: CreateAuthApplicationOptions): AuthApplication {
  const store = createPostgresAuthStore(options.db);
  return new AuthApplication({
    store,
    settings: options.settings,
    recorder: createEventStoreAccessRecorder({ db: options.db, logger: options.logger }),
    clock: options.clock,
    logger: options.logger,
    tokens: new TokenAuthenticator({
      store,
      clock: options.clock,
      jwksCooldownMs: options.settings.jwksCooldownMs,
      httpTimeoutMs: options.settings.oidcHttpTimeoutMs,
    }),
  });
}
