import { parseArgs } from "node:util";
import type { DevBootstrap } from "../../auth/bootstrap.js";
import { loadConfig } from "../../kernel/config.js";
import { createLogger } from "../../kernel/logger.js";
import type { Command } from "../command.js";

/** `nexus admin bootstrap`: the installation's first platform key, printed once. */
export const adminBootstrapCommand: Command = {
  path: ["admin", "bootstrap"],
  summary: "Create a platform key directly in the database and print it once (refused while one exists, unless --force)",
  usage:
    "nexus admin bootstrap [--force] [--name NAME] [--data-dir .nexus] [--json]   (DATABASE_URL, else the embedded database; stop nexus dev first)",
  async run(args) {
    // Loaded on use: `nexus help` and client commands start without the whole mesh.
    const { authSettingsFromConfig } = await import("../../auth/auth-settings.js");
    const { createAuthApplication } = await import("../../auth/create-auth-application.js");
    const { bootstrapPlatformKey } = await import("../../auth/bootstrap.js");
    const { authMigrations } = await import("../../auth/migrations.js");
    const { migrateSchemas } = await import("../../kernel/service/index.js");
    const { migratePlatform } = await import("../../kernel/events/platform-migrations.js");
    const { openDatabase } = await import("../../runtime/start-nexus.js");
    const { values } = parseArgs({
      args,
      options: { force: { type: "boolean" }, name: { type: "string" }, "data-dir": { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    const config = loadConfig({ ...process.env, NEXUS_DATA_DIR: values["data-dir"] ?? process.env.NEXUS_DATA_DIR });
    const logger = createLogger({ level: "warn", pretty: config.logPretty, name: "nexus-admin" });
    const db = await openDatabase(config);
    try {
      await migratePlatform(db, logger);
      await migrateSchemas(db, [authMigrations], logger);
      const app = createAuthApplication({ db, logger, clock: () => new Date(), settings: authSettingsFromConfig(config) });
      const issued = await bootstrapPlatformKey(app, { force: values.force === true, ...(values.name ? { name: values.name } : {}) });
      if (values.json) {
        console.log(JSON.stringify({ keyId: issued.key.id, name: issued.key.name, plaintextKey: issued.plaintext }, null, 2));
        return 0;
      }
      console.log(
        [
          `platform key ${issued.key.id} ("${issued.key.name}") created.`,
          ``,
          `API key (shown once; store it now, it cannot be retrieved again):`,
          ``,
          `  ${issued.plaintext}`,
          ``,
          `  export NEXUS_API_KEY=${issued.plaintext}`,
        ].join("\n"),
      );
      return 0;
    } finally {
      await db.close();
    }
  },
};

/** `nexus admin generate-key`: a platform key for NEXUS_BOOTSTRAP_KEY_* (no database). */
export const adminGenerateKeyCommand: Command = {
  path: ["admin", "generate-key"],
  summary: "Generate a platform key offline and print it with the NEXUS_BOOTSTRAP_KEY_ID/_SHA256 values that install it (Kubernetes)",
  usage: "nexus admin generate-key [--json]",
  async run(args) {
    // Loaded on use: `nexus help` and client commands start without the whole mesh.
    const { generateApiKey } = await import("../../auth/domain/api-key-secret.js");
    const { values } = parseArgs({ args, options: { json: { type: "boolean" } }, strict: true });
    const key = generateApiKey();
    const digest = Buffer.from(key.digest).toString("hex");
    if (values.json) {
      console.log(JSON.stringify({ keyId: key.keyId, sha256: digest, plaintextKey: key.plaintext }, null, 2));
      return 0;
    }
    console.log(
      [
        `Platform key (keep it in your secret store; Nexus only ever sees its digest):`,
        ``,
        `  ${key.plaintext}`,
        ``,
        `Install it by setting on the auth service:`,
        ``,
        `  NEXUS_BOOTSTRAP_KEY_ID=${key.keyId}`,
        `  NEXUS_BOOTSTRAP_KEY_SHA256=${digest}`,
      ].join("\n"),
    );
    return 0;
  },
};

/** Every `nexus admin …` command. */
export const adminCommands: readonly Command[] = [adminBootstrapCommand, adminGenerateKeyCommand];

/** What `nexus dev` prints about keys: both keys on the first start, where to get keys after. */
export function devBootstrapBanner(first: DevBootstrap | undefined, dataDir: string | undefined): string {
  if (first === undefined) {
    return [
      `  keys:      printed on the first start of this data directory (never stored in plaintext).`,
      `             Lost them? Stop nexus dev and run \`nexus admin bootstrap --force${dataDir ? ` --data-dir ${dataDir}` : ""}\``,
      `             for a new platform key, then \`nexus keys create\`.`,
    ].join("\n");
  }
  return [
    ``,
    `First start: API keys (shown once; store them now, they cannot be retrieved again)`,
    ``,
    `  platform operator key (${first.platformKey.key.id}):`,
    `    ${first.platformKey.plaintext}`,
    ``,
    `  tenant "${first.tenant.slug}" (${first.tenant.id}, plan ${first.tenant.plan}), owner key (${first.ownerKey.key.id}):`,
    `    ${first.ownerKey.plaintext}`,
    ``,
    `  try: NEXUS_API_KEY=<owner key> nexus whoami`,
    `       NEXUS_API_KEY=<owner key> nexus ask "How do I rotate an API key?"`,
  ].join("\n");
}
