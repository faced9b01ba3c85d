import { execFile } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { newMasterKeyLine, parseMasterKeys } from "../services/kernel/keyring/index.js";
import { backup, restore } from "../services/runtime/backup.js";
import { benchServerUrl, createBenchDatabase } from "./rag-setup.js";
import type { BenchOutcome } from "./results.js";

const exec = promisify(execFile);

/**
 * Backup and restore throughput (issue 17): `nexus backup` (pg_dump in custom format of one
 * snapshot, row counts, AES-256-GCM, a signed manifest) and `nexus restore` (checks, decrypt,
 * pg_restore, row counts) against `pg_dump` and `pg_restore` alone on the same database in the
 * same run, in MB of database (pg_database_size) per second.
 */
export interface BackupBenchResult {
  databaseMb: number;
  dumpMb: number;
  pgDumpMbPerSecond: number;
  backupMbPerSecond: number;
  pgRestoreMbPerSecond: number;
  restoreMbPerSecond: number;
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

export async function benchBackup(options: { rows?: number; log?: (line: string) => void } = {}): Promise<BackupBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const rows = options.rows ?? 200_000;
  const server = benchServerUrl();
  const source = await createBenchDatabase(server);
  const targets: Array<{ url: string; drop(): Promise<void> }> = [];
  const dir = await mkdtemp(path.join(tmpdir(), "nexus-bench-backup-"));
  try {
    await query(
      source.url,
      `CREATE TABLE bench_docs (id bigint PRIMARY KEY, tenant text NOT NULL, body text NOT NULL, meta jsonb NOT NULL);
       INSERT INTO bench_docs SELECT i, 'tenant-' || (i % 50), repeat(md5(i::text), 8), jsonb_build_object('n', i, 'tag', md5((i * 7)::text))
       FROM generate_series(1, ${rows}) i;
       CREATE INDEX bench_docs_tenant ON bench_docs (tenant);`,
    );
    const size = Number((await query<{ s: string }>(source.url, "SELECT pg_database_size(current_database()) AS s"))[0]!.s) / 1e6;
    const masterKeys = parseMasterKeys(newMasterKeyLine(1), "bench");
    const time = async (fn: () => Promise<unknown>) => {
      const t = performance.now();
      await fn();
      return (performance.now() - t) / 1000;
    };
    const plainDump = path.join(dir, "plain.dump");
    const pgDumpSeconds = await time(() => exec("pg_dump", ["--format=custom", "--no-owner", "--file", plainDump, "--dbname", source.url]));
    let manifestPath = "";
    const backupSeconds = await time(async () => {
      manifestPath = (await backup({ databaseUrl: source.url, masterKeys, outDir: path.join(dir, "backups") })).manifestPath;
    });
    const t1 = await createBenchDatabase(server);
    const t2 = await createBenchDatabase(server);
    targets.push(t1, t2);
    const pgRestoreSeconds = await time(() =>
      exec("pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", t1.url, plainDump]),
    );
    const restoreSeconds = await time(() => restore({ manifestPath, masterKeys, targetUrl: t2.url }));
    const result: BackupBenchResult = {
      databaseMb: size,
      dumpMb: (await stat(plainDump)).size / 1e6,
      pgDumpMbPerSecond: size / pgDumpSeconds,
      backupMbPerSecond: size / backupSeconds,
      pgRestoreMbPerSecond: size / pgRestoreSeconds,
      restoreMbPerSecond: size / restoreSeconds,
    };
    log(
      `  ${size.toFixed(0)} MB database: pg_dump ${result.pgDumpMbPerSecond.toFixed(1)} MB/s, nexus backup ${result.backupMbPerSecond.toFixed(1)} MB/s; ` +
        `pg_restore ${result.pgRestoreMbPerSecond.toFixed(1)} MB/s, nexus restore ${result.restoreMbPerSecond.toFixed(1)} MB/s`,
    );
    return result;
  } finally {
    for (const t of targets) await t.drop();
    await source.drop();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchBackupOutcome(log: (line: string) => void): Promise<BenchOutcome> {
  const r = await benchBackup({ log });
  const bench = `backup (PostgreSQL, ${r.databaseMb.toFixed(0)} MB)`;
  return {
    result: r,
    ratios: [
      { bench, name: "nexus backup MB/s / pg_dump MB/s", value: r.backupMbPerSecond / r.pgDumpMbPerSecond, unit: "×" },
      { bench, name: "nexus restore MB/s / pg_restore MB/s", value: r.restoreMbPerSecond / r.pgRestoreMbPerSecond, unit: "×" },
    ],
  };
}
