import { ConfigError, type NexusConfig } from "../kernel/config.js";
import type { Principal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { AuthApplication, IssuedKey } from "./auth-application.js";
import { parseDigestHex } from "./domain/api-key-secret.js";
import type { Tenant } from "./domain/tenant.js";

/**
 * How an installation gets its first keys — before any key exists, nobody can call the API:
 *
 * - `nexus admin bootstrap` prints a new platform key once (refused while a usable platform
 *   key exists, unless `--force`);
 * - NEXUS_BOOTSTRAP_KEY_ID + NEXUS_BOOTSTRAP_KEY_SHA256 install a platform key from its digest
 *   at start-up (Kubernetes: the plaintext lives only in the operator's secret store);
 * - `nexus dev`, on the first start of a data directory, creates a platform key and a demo
 *   tenant ("demo", plan pro) with an owner key and prints both keys — once.
 */

/** Installation step recorded once `nexus dev` printed its keys. */
export const DEV_BOOTSTRAP_STEP = "dev-bootstrap";

/** Slug of the demo tenant `nexus dev` creates. */
export const DEMO_TENANT_SLUG = "demo";

/** Installs the platform key the configuration names by digest, if any. */
export async function installConfiguredPlatformKey(
  app: AuthApplication,
  config: Pick<NexusConfig, "bootstrapKeyId" | "bootstrapKeySha256">,
): Promise<"created" | "present" | "none"> {
  const { bootstrapKeyId: id, bootstrapKeySha256: hex } = config;
  if (id === undefined && hex === undefined) return "none";
  if (id === undefined || hex === undefined) {
    const missing = id === undefined ? "NEXUS_BOOTSTRAP_KEY_ID" : "NEXUS_BOOTSTRAP_KEY_SHA256";
    throw new ConfigError([
      {
        variable: missing,
        message: `${missing} must be set together with ${id === undefined ? "NEXUS_BOOTSTRAP_KEY_SHA256" : "NEXUS_BOOTSTRAP_KEY_ID"}`,
      },
    ]);
  }
  const digest = parseDigestHex(hex);
  if (digest === undefined)
    throw new ConfigError([{ variable: "NEXUS_BOOTSTRAP_KEY_SHA256", message: "NEXUS_BOOTSTRAP_KEY_SHA256 is not a hex SHA-256 digest" }]);
  return app.ensureConfiguredPlatformKey(id, digest);
}

/**
 * Issues a platform key for `nexus admin bootstrap`. Refuses (FAILED_PRECONDITION) while a
 * platform key that still authenticates exists, unless `force` — a lost key is recovered with
 * `--force`, then the old one is revoked with the new one.
 */
export async function bootstrapPlatformKey(app: AuthApplication, options: { force: boolean; name?: string }): Promise<IssuedKey> {
  if (!options.force && (await app.hasUsablePlatformKey())) {
    throw domainError(
      "FAILED_PRECONDITION",
      "a platform key already exists; use it to create more (nexus keys create --platform), or pass --force to issue another",
    );
  }
  return app.issuePlatformKey("bootstrap", options.name ?? "bootstrap", undefined);
}

/** What `nexus dev` created on its first start. */
export interface DevBootstrap {
  platformKey: IssuedKey;
  tenant: Tenant;
  ownerKey: IssuedKey;
}

/**
 * First start of `nexus dev` on a data directory: a platform key, the "demo" tenant on the
 * pro plan and an owner key for it. Returns undefined on every later start (the keys were
 * printed then and are not stored in plaintext anywhere).
 */
export async function bootstrapDevInstallation(app: AuthApplication): Promise<DevBootstrap | undefined> {
  if (await app.installationStepDone(DEV_BOOTSTRAP_STEP)) return undefined;
  const platformKey = await app.issuePlatformKey("bootstrap", "dev platform", undefined);
  const operator: Principal = { kind: "platform", keyId: platformKey.key.id, name: platformKey.key.name };
  let tenant: Tenant;
  try {
    tenant = await app.createTenant(operator, { slug: DEMO_TENANT_SLUG, displayName: "Demo", plan: "pro" });
  } catch (err) {
    // A data directory bootstrapped by an older build may already hold the demo tenant.
    tenant = await app.getTenant(operator, { slug: DEMO_TENANT_SLUG }).catch(() => {
      throw err;
    });
  }
  const ownerKey = await app.createApiKey(operator, {
    tenantId: tenant.id,
    name: "demo owner",
    role: "owner",
    expiresAt: undefined,
    platformKey: false,
  });
  await app.markInstallationStep(DEV_BOOTSTRAP_STEP);
  return { platformKey, tenant, ownerKey };
}
