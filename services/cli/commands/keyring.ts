import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import type { Database } from "../../kernel/db/ports.js";
import type { Keyring } from "../../kernel/keyring/index.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";

/** The keyring of DATABASE_URL (else the embedded database) with this process's master keys. */
export async function withKeyring<T>(dataDir: string | undefined, fn: (db: Database, keyring: Keyring) => Promise<T>): Promise<T> {
  // Loaded on use: `nexus help` and client commands start without the whole mesh.
  const { createKeyring, keyringMigrations, resolveMasterKeys } = await import("../../kernel/keyring/index.js");
  const { migrateSchemas } = await import("../../kernel/service/index.js");
  const { openDatabase } = await import("../../runtime/start-nexus.js");
  const config = loadConfig({ ...process.env, NEXUS_DATA_DIR: dataDir ?? process.env.NEXUS_DATA_DIR });
  const db = await openDatabase(config);
  try {
    await migrateSchemas(db, [keyringMigrations]);
    const masterKeys = await resolveMasterKeys({
      fromEnv: config.masterKeys,
      file: config.masterKeyFile,
      embedded: db.dialect === "pglite",
      dataDir: config.dataDir,
    });
    return await fn(db, createKeyring({ db, masterKeys }));
  } finally {
    await db.close();
  }
}

const PURPOSE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** `nexus keyring rotate`: a new data key version and the job that re-encrypts under it. */
export const keyringRotateCommand: Command = {
  path: ["keyring", "rotate"],
  summary: "Rotate a tenant's data key of one purpose; the owning service re-encrypts existing values in the background",
  usage:
    "nexus keyring rotate --tenant TENANT --purpose documents|sessions|… [--data-dir .nexus] [--json]   (DATABASE_URL, master keys as the services have them)",
  async run(args) {
    const { startKeyRotation } = await import("../../kernel/keyring/index.js");
    const { values } = parseArgs({
      args,
      options: { tenant: { type: "string" }, purpose: { type: "string" }, "data-dir": { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    if (!values.tenant) throw new UsageError("--tenant is required");
    if (!values.purpose || !PURPOSE.test(values.purpose))
      throw new UsageError("--purpose is required: a lower-case name such as documents or sessions");
    const job = await withKeyring(values["data-dir"], (db, keyring) =>
      startKeyRotation(db, keyring, { tenantId: values.tenant!, purpose: values.purpose! }),
    );
    if (values.json) console.log(JSON.stringify(job, null, 2));
    else
      console.log(
        `${values.purpose} key of tenant ${values.tenant} rotated to version ${job.targetVersion}; re-encryption job ${job.jobId} queued (nexus keyring jobs)`,
      );
    return 0;
  },
};

/** `nexus keyring jobs`: re-encryption jobs and their progress. */
export const keyringJobsCommand: Command = {
  path: ["keyring", "jobs"],
  summary: "List key rotation (re-encryption) jobs with their progress",
  usage: "nexus keyring jobs [--tenant TENANT] [--limit 50] [--data-dir .nexus] [--json]",
  async run(args) {
    const { listKeyringJobs } = await import("../../kernel/keyring/index.js");
    const { values } = parseArgs({
      args,
      options: { tenant: { type: "string" }, limit: { type: "string" }, "data-dir": { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError("--limit must be an integer from 1 to 1000");
    const jobs = await withKeyring(values["data-dir"], (db) =>
      listKeyringJobs(db, { ...(values.tenant ? { tenantId: values.tenant } : {}), limit }),
    );
    if (values.json) {
      console.log(JSON.stringify(jobs, null, 2));
      return 0;
    }
    if (jobs.length === 0) {
      console.log("no key rotation jobs");
      return 0;
    }
    printTable(
      ["JOB", "TENANT", "PURPOSE", "VERSION", "STATUS", "PHASE", "SCANNED", "RESEALED", "RETIRED", "ERROR"],
      jobs.map((j) => {
        const p = Object.values(j.progress);
        return [
          j.jobId,
          j.tenantId,
          j.purpose,
          String(j.targetVersion),
          j.status,
          j.phase,
          String(p.reduce((n, f) => n + f.scanned, 0)),
          String(p.reduce((n, f) => n + f.resealed, 0)),
          j.retiredVersions.join(",") || "-",
          j.error,
        ];
      }),
    );
    return 0;
  },
};

/** `nexus keyring rewrap`: every data key under the newest master key version. */
export const keyringRewrapCommand: Command = {
  path: ["keyring", "rewrap"],
  summary: "Re-wrap every data key under the newest configured master key (after adding one); the old master key can go afterwards",
  usage: "nexus keyring rewrap [--data-dir .nexus]",
  async run(args) {
    const { values } = parseArgs({ args, options: { "data-dir": { type: "string" } }, strict: true });
    const changed = await withKeyring(values["data-dir"], (_db, keyring) => keyring.rewrap());
    console.log(`${changed} data key(s) re-wrapped under the current master key`);
    return 0;
  },
};

export const keyringCommands: readonly Command[] = [keyringRotateCommand, keyringJobsCommand, keyringRewrapCommand];
