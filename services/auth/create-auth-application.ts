import type { Logger } from "pino";
import { createEventStoreAccessRecorder } from "../kernel/authz/access-recorder.js";
import type { Database } from "../kernel/db/ports.js";
import type { Keyring } from "../kernel/keyring/index.js";
import { createPostgresAuthStore } from "./adapters/postgres.js";
import { AuthApplication } from "./auth-application.js";
import type { AuthSettings } from "./auth-settings.js";
import { IdentityApplication } from "./identity-application.js";
import { ScimApplication } from "./scim-application.js";
import { SignIn } from "./sign-in.js";
import { TokenAuthenticator } from "./token-authentication.js";

/** Options of {@link createAuthApplication}. */
export interface CreateAuthApplicationOptions {
  db: Database;
  logger: Logger;
  clock: () => Date;
  settings: AuthSettings;
  /** Seals identity provider client secrets (the service passes ctx.keyring); optional elsewhere. */
  keyring?: Keyring;
}

/** The auth use cases with their people side (what the auth service serves). */
export interface AuthParts {
  app: AuthApplication;
  identity: IdentityApplication;
  signIn: SignIn;
  scim: ScimApplication;
}

/**
 * The auth use cases on a database (store: auth schema; events: platform.events), with people
 * (identity), access tokens and sign-in sessions. The service (server.ts), the authentication
 * gate of a process hosting auth (mesh-security.ts), the CLI's bootstrap and tests all build it
 * here.
 */
export function createAuthParts(options: CreateAuthApplicationOptions): AuthParts {
  const store = createPostgresAuthStore(options.db);
  const tokens = new TokenAuthenticator({
    store,
    clock: options.clock,
    jwksCooldownMs: options.settings.jwksCooldownMs,
    httpTimeoutMs: options.settings.oidcHttpTimeoutMs,
    ...(options.settings.platformIssuer ? { platform: options.settings.platformIssuer } : {}),
  });
  const identity = new IdentityApplication({
    store,
    settings: options.settings,
    clock: options.clock,
    logger: options.logger,
    ...(options.keyring ? { keyring: options.keyring } : {}),
  });
  const signIn = new SignIn({
    store,
    identity,
    jwks: tokens.jwks,
    clock: options.clock,
    settings: {
      sessionTtlMs: options.settings.sessionTtlMs,
      stateTtlMs: options.settings.signInStateTtlMs,
      httpTimeoutMs: options.settings.oidcHttpTimeoutMs,
    },
  });
  const recorder = createEventStoreAccessRecorder({ db: options.db, logger: options.logger });
  const app = new AuthApplication({
    store,
    settings: options.settings,
    recorder,
    clock: options.clock,
    logger: options.logger,
    tokens,
    sessions: signIn,
  });
  const scim = new ScimApplication({ store, db: options.db, clock: options.clock, logger: options.logger, recorder });
  return { app, identity, signIn, scim };
}

/** {@link createAuthParts} when only the auth use cases are needed. */
export function createAuthApplication(options: CreateAuthApplicationOptions): AuthApplication {
  return createAuthParts(options).app;
}
