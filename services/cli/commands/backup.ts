import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import type { MasterKeys } from "../../kernel/keyring/index.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";

/** DATABASE_URL and the master keys, as the services have them (a backup needs both). */
async function settings(needDatabase = true): Promise<{ databaseUrl: string; masterKeys: MasterKeys }> {
  const { resolveMasterKeys } = await import("../../kernel/keyring/index.js");
  const config = loadConfig();
  const databaseUrl = process.env.DATABASE_URL ?? "";
  if (!databaseUrl && needDatabase)
    throw new UsageError(
      "DATABASE_URL is required: backups are of PostgreSQL (nexus dev's embedded database is a directory; copy it while stopped)",
    );
  const masterKeys = await resolveMasterKeys({
    fromEnv: config.masterKeys,
    file: config.masterKeyFile,
    embedded: false,
    dataDir: config.dataDir,
  });
  if (!masterKeys)
    throw new UsageError("no master key: set NEXUS_MASTER_KEYS or NEXUS_MASTER_KEY_FILE (backups are encrypted and signed with it)");
  return { databaseUrl, masterKeys };
}

/** Prints a refused backup with its reason. */
async function refusing<T>(fn: () => Promise<T>): Promise<T> {
  const { BackupRefused } = await import("../../runtime/backup.js");
  try {
    return await fn();
  } catch (err) {
    if (err instanceof BackupRefused) throw new Error(`${err.reason}: ${err.message}`);
    throw err;
  }
}

const positive = (v: string | undefined, name: string, fallback: number) => {
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 10_000) throw new UsageError(`--${name} must be an integer from 0 to 10000`);
  return n;
};

/** `nexus backup`: an encrypted, signed pg_dump with a manifest. */
export const backupCommand: Command = {
  path: ["backup"],
  summary:
    "Back the database up: pg_dump (custom format) encrypted with the master key, and a signed manifest with checksums and row counts",
  usage: "nexus backup --out DIR [--keep 7] [--pg-dump pg_dump] [--json]   (DATABASE_URL; NEXUS_MASTER_KEYS or NEXUS_MASTER_KEY_FILE)",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { out: { type: "string" }, keep: { type: "string" }, "pg-dump": { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    if (!values.out) throw new UsageError("--out DIR is required");
    const keep = positive(values.keep, "keep", 0);
    const { backup } = await import("../../runtime/backup.js");
    const { databaseUrl, masterKeys } = await settings();
    const { manifestPath, manifest } = await refusing(() =>
      backup({ databaseUrl, masterKeys, outDir: values.out!, keep, ...(values["pg-dump"] ? { pgDump: values["pg-dump"] } : {}) }),
    );
    if (values.json) console.log(JSON.stringify({ manifestPath, ...manifest }, null, 2));
    else {
      const rows = Object.values(manifest.rowCounts).reduce((a, b) => a + b, 0);
      console.log(
        `backup ${manifest.id}: ${rows} rows in ${Object.keys(manifest.rowCounts).length} tables, ${manifest.sizeBytes} bytes encrypted\nmanifest: ${manifestPath}`,
      );
    }
    return 0;
  },
};

/** `nexus restore`: a verified backup into an empty database. */
export const restoreCommand: Command = {
  path: ["restore"],
  summary: "Restore a backup into an empty database after checking its signature, checksum and row counts",
  usage:
    "nexus restore --from MANIFEST --target-url postgres://… [--shred-list FILE …] [--pg-restore pg_restore]   (master keys as for backup; default shred list: shred-list.json beside the manifest)",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        from: { type: "string" },
        "target-url": { type: "string" },
        "pg-restore": { type: "string" },
        "shred-list": { type: "string", multiple: true },
      },
      strict: true,
    });
    if (!values.from) throw new UsageError("--from MANIFEST is required");
    if (!values["target-url"]) throw new UsageError("--target-url is required (an empty database)");
    const { restore } = await import("../../runtime/backup.js");
    const { masterKeys } = await settings(false);
    const { manifest, rowCounts, reshredded, shredLists } = await refusing(() =>
      restore({
        manifestPath: values.from!,
        masterKeys,
        targetUrl: values["target-url"]!,
        ...(values["pg-restore"] ? { pgRestore: values["pg-restore"] } : {}),
        ...(values["shred-list"] ? { shredLists: values["shred-list"] } : {}),
      }),
    );
    console.log(`backup ${manifest.id} restored: ${Object.values(rowCounts).reduce((a, b) => a + b, 0)} rows, counts match the manifest`);
    if (shredLists.length === 0)
      console.log(
        "warning: no shred list beside the backup (shred-list.json) and none given: tenants shredded after this backup was taken are readable again",
      );
    else
      console.log(
        `shred list re-applied (${shredLists.join(", ")}): ${reshredded.length === 0 ? "no tenant of this backup was shredded later" : `keys destroyed again for ${reshredded.join(", ")}`}`,
      );
    return 0;
  },
};

/** `nexus restore drill`: restore into a scratch database and verify. */
export const restoreDrillCommand: Command = {
  path: ["restore", "drill"],
  summary: "Restore drill: restore a backup into a scratch database, verify row counts, every audit chain and a search, then drop it",
  usage: "nexus restore drill --from MANIFEST [--server-url postgres://… (default DATABASE_URL's server)] [--keep-database] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        from: { type: "string" },
        "server-url": { type: "string" },
        "keep-database": { type: "boolean" },
        "pg-restore": { type: "string" },
        json: { type: "boolean" },
      },
      strict: true,
    });
    if (!values.from) throw new UsageError("--from MANIFEST is required");
    const { restoreDrill } = await import("../../runtime/backup.js");
    const { databaseUrl, masterKeys } = await settings();
    const report = await refusing(() =>
      restoreDrill({
        manifestPath: values.from!,
        masterKeys,
        serverUrl: values["server-url"] ?? databaseUrl,
        keep: values["keep-database"] === true,
        ...(values["pg-restore"] ? { pgRestore: values["pg-restore"] } : {}),
      }),
    );
    if (values.json) console.log(JSON.stringify(report, null, 2));
    else {
      console.log(`restore drill of backup ${report.backupId}: ${report.ok ? "PASSED" : "FAILED"} in ${report.seconds.toFixed(1)} s`);
      console.log(`  row counts: ${report.rows} rows in ${report.tables} tables match the manifest`);
      for (const a of report.auditChains)
        console.log(`  audit chain ${a.tenantId}: ${a.ok ? "verifies" : "BROKEN"} (${a.entries} entries)`);
      if (report.search)
        console.log(
          `  search "${report.search.query}" in ${report.search.tenantId}/${report.search.corpusId}: ${report.search.hits} hit(s), text ${report.search.opened ? "decrypts" : "does NOT decrypt"}`,
        );
    }
    return report.ok ? 0 : 1;
  },
};

export const backupCommands: readonly Command[] = [backupCommand, restoreCommand, restoreDrillCommand];
