import { spawn } from "node:child_process";
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes, randomUUID, timingSafeEqual } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import pg from "pg";
import { pino } from "pino";
import { createPostgresAuditStore } from "../audit/adapters/postgres.js";
import { AuditApplication } from "../audit/audit-application.js";
import { checkpointVerifier } from "../audit/audit-retention.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import { createFieldCipher, createKeyring, type MasterKeys } from "../kernel/keyring/index.js";
import { buildSearchStatement } from "../knowledge/retrieval/adapters/postgres-search-index.js";

/**
 * `nexus backup` / `nexus restore` / `nexus restore drill` (docs/governance.md#backups):
 * pg_dump in custom format of one consistent snapshot, encrypted (AES-256-GCM) under a key
 * derived from the current master key, beside a manifest — row counts of every table in that
 * snapshot, SHA-256 of the encrypted file — signed with an HMAC key derived from the same
 * master key. Restore refuses a manifest whose signature does not verify or a file whose
 * checksum or authentication tag does not match, and restores only into an empty database.
 */
export const BACKUP_FORMAT = "nexus-backup/1";

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  id: string;
  createdAt: string;
  /** Database name only (never the URL: it may carry a password). */
  database: string;
  serverVersion: string;
  pgDumpVersion: string;
  /** The encrypted dump, beside the manifest. */
  file: string;
  sizeBytes: number;
  sha256: string;
  plainSizeBytes: number;
  encryption: { algorithm: "aes-256-gcm"; masterKeyVersion: number; salt: string; iv: string; tag: string };
  /** Exact row counts of every table, from the snapshot the dump was taken of. */
  rowCounts: Record<string, number>;
  /** HMAC-SHA256 (hex) of the manifest without this field, under a key derived from the master key. */
  signature: string;
}

/** A backup that cannot be used: tampered, corrupt, or the wrong master key. */
export class BackupRefused extends Error {
  constructor(
    readonly reason:
      | "BACKUP_MANIFEST_INVALID"
      | "BACKUP_CORRUPT"
      | "BACKUP_KEY_MISSING"
      | "RESTORE_TARGET_NOT_EMPTY"
      | "BACKUP_TOOL_FAILED"
      | "SHRED_LIST_INVALID",
    message: string,
  ) {
    super(message);
  }
}

function derive(masterKeys: MasterKeys, version: number, salt: Buffer, info: string): Buffer {
  const master = masterKeys.key(version);
  if (!master)
    throw new BackupRefused(
      "BACKUP_KEY_MISSING",
      `the backup was made under master key version ${version}, which is not configured (NEXUS_MASTER_KEYS / NEXUS_MASTER_KEY_FILE)`,
    );
  return Buffer.from(hkdfSync("sha256", master, salt, info, 32));
}

function canonical(manifest: Omit<BackupManifest, "signature">): string {
  const sort = (v: unknown): unknown =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v as object)
            .sort()
            .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
        )
      : v;
  return JSON.stringify(sort(manifest));
}

function sign(masterKeys: MasterKeys, m: Omit<BackupManifest, "signature">): string {
  const key = derive(masterKeys, m.encryption.masterKeyVersion, Buffer.from(m.encryption.salt, "base64"), "nexus.backup.v1.sign");
  return createHmac("sha256", key).update(canonical(m)).digest("hex");
}

/** Whether a given hex signature equals the expected one (constant time). */
function sameHex(expectedHex: string, givenHex: string): boolean {
  const expected = Buffer.from(expectedHex, "hex");
  const given = Buffer.from(givenHex, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", (e) => reject(new BackupRefused("BACKUP_TOOL_FAILED", `${cmd} could not start: ${e.message}`)));
    child.on("close", (code) =>
      code === 0
        ? resolve(out)
        : reject(new BackupRefused("BACKUP_TOOL_FAILED", `${cmd} exited with ${code}: ${err.trim().slice(0, 2000)}`)),
    );
  });
}

/** Every base table outside the system schemas, as "schema.table". */
async function tables(c: pg.Client): Promise<string[]> {
  const { rows } = await c.query<{ name: string }>(
    `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name FROM information_schema.tables
     WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg_toast%'
     ORDER BY 1`,
  );
  return rows.map((r) => r.name);
}

async function rowCounts(c: pg.Client): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const t of await tables(c)) {
    const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`);
    counts[t] = Number(rows[0]!.n);
  }
  return counts;
}

const sha256File = async (file: string): Promise<string> => {
  const h = createHash("sha256");
  await pipeline(createReadStream(file), h);
  return h.digest("hex");
};

export interface BackupOptions {
  databaseUrl: string;
  masterKeys: MasterKeys;
  /** Directory the backup goes to (created). */
  outDir: string;
  pgDump?: string;
  /** Keep only the newest N backups in outDir (0: keep all). */
  keep?: number;
}

/** Takes a backup; returns the manifest path and the manifest. */
export async function backup(o: BackupOptions): Promise<{ manifestPath: string; manifest: BackupManifest }> {
  const pgDump = o.pgDump ?? "pg_dump";
  await mkdir(o.outDir, { recursive: true });
  const id = `${new Date().toISOString().replace(/[-:]/g, "").replace(/\..+/, "Z")}-${randomUUID().slice(0, 8)}`;
  const plainFile = path.join(o.outDir, `.${id}.dump.partial`);
  const encFile = path.join(o.outDir, `${id}.dump.enc`);
  const c = new pg.Client({ connectionString: o.databaseUrl });
  await c.connect();
  let counts: Record<string, number>;
  let serverVersion: string;
  let shreddedNow: ShreddedTenant[] = [];
  try {
    // One snapshot for the counts and the dump: they describe the same data.
    await c.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const snapshot = (await c.query<{ s: string }>("SELECT pg_export_snapshot() AS s")).rows[0]!.s;
    serverVersion = (await c.query<{ v: string }>("SHOW server_version")).rows[0]!.v;
    counts = await rowCounts(c);
    shreddedNow = await shreddedTenants(c);
    await run(pgDump, ["--format=custom", `--snapshot=${snapshot}`, "--no-owner", "--file", plainFile, "--dbname", o.databaseUrl]);
    await c.query("COMMIT");
  } finally {
    await c.end().catch(() => undefined);
  }
  try {
    const version = o.masterKeys.current;
    const salt = randomBytes(32);
    const iv = randomBytes(12);
    const key = derive(o.masterKeys, version, salt, "nexus.backup.v1.encrypt");
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    cipher.setAAD(Buffer.from(`${BACKUP_FORMAT}\n${id}`));
    const hash = createHash("sha256");
    const tap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    await pipeline(createReadStream(plainFile), cipher, tap, createWriteStream(`${encFile}.partial`));
    await rename(`${encFile}.partial`, encFile);
    const unsigned: Omit<BackupManifest, "signature"> = {
      format: BACKUP_FORMAT,
      id,
      createdAt: new Date().toISOString(),
      database: new URL(o.databaseUrl).pathname.replace(/^\//, ""),
      serverVersion,
      pgDumpVersion: (await run(pgDump, ["--version"])).trim(),
      file: path.basename(encFile),
      sizeBytes: (await stat(encFile)).size,
      sha256: hash.digest("hex"),
      plainSizeBytes: (await stat(plainFile)).size,
      encryption: {
        algorithm: "aes-256-gcm",
        masterKeyVersion: version,
        salt: salt.toString("base64"),
        iv: iv.toString("base64"),
        tag: cipher.getAuthTag().toString("base64"),
      },
      rowCounts: counts,
    };
    const manifest: BackupManifest = { ...unsigned, signature: sign(o.masterKeys, unsigned) };
    const manifestPath = path.join(o.outDir, `${id}.manifest.json`);
    await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    await updateShredList(o.outDir, o.masterKeys, shreddedNow);
    if (o.keep && o.keep > 0) await prune(o.outDir, o.keep);
    return { manifestPath, manifest };
  } finally {
    await rm(plainFile, { force: true });
  }
}

/** Deletes all but the newest `keep` backups (manifest and file) in dir. */
export async function prune(dir: string, keep: number): Promise<string[]> {
  const manifests = (await readdir(dir)).filter((f) => f.endsWith(".manifest.json")).sort();
  const old = manifests.slice(0, Math.max(0, manifests.length - keep));
  for (const m of old) {
    const id = m.replace(/\.manifest\.json$/, "");
    await rm(path.join(dir, `${id}.dump.enc`), { force: true });
    await rm(path.join(dir, m), { force: true });
  }
  return old;
}

/** Reads and checks a manifest: format, signature, then the file's size and checksum. */
export async function verifyBackup(manifestPath: string, masterKeys: MasterKeys): Promise<BackupManifest> {
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, "utf8")) as BackupManifest;
  } catch (err) {
    throw new BackupRefused("BACKUP_MANIFEST_INVALID", `${manifestPath} is not a backup manifest: ${(err as Error).message}`);
  }
  if (manifest?.format !== BACKUP_FORMAT || typeof manifest.signature !== "string" || !manifest.encryption)
    throw new BackupRefused("BACKUP_MANIFEST_INVALID", `${manifestPath} is not a ${BACKUP_FORMAT} manifest`);
  const { signature, ...unsigned } = manifest;
  if (!sameHex(sign(masterKeys, unsigned), signature))
    throw new BackupRefused(
      "BACKUP_MANIFEST_INVALID",
      "the manifest's signature does not verify: it was altered, or it was made with another master key; refusing to restore",
    );
  const file = path.join(path.dirname(manifestPath), path.basename(manifest.file));
  const size = await stat(file).then(
    (s) => s.size,
    () => -1,
  );
  if (size !== manifest.sizeBytes) throw new BackupRefused("BACKUP_CORRUPT", `${file} is missing or not ${manifest.sizeBytes} bytes`);
  if ((await sha256File(file)) !== manifest.sha256)
    throw new BackupRefused("BACKUP_CORRUPT", `${file} does not match the manifest's SHA-256`);
  return manifest;
}

export interface RestoreOptions {
  manifestPath: string;
  masterKeys: MasterKeys;
  /** An empty database to restore into. */
  targetUrl: string;
  pgRestore?: string;
  /**
   * Shred lists to re-apply after the restore (default: the one beside the manifest, when
   * there is one). Every tenant they name has its data keys destroyed in the restored database.
   */
  shredLists?: string[];
}

/**
 * Verifies, decrypts and restores a backup into an empty database; checks the row counts; then
 * re-applies the shred list, so a backup taken before a tenant was crypto-shredded does not
 * bring that tenant's keys (and so its data) back.
 */
export async function restore(o: RestoreOptions): Promise<{
  manifest: BackupManifest;
  rowCounts: Record<string, number>;
  /** Tenants whose keys the restore destroyed again (they were shredded after the backup was taken). */
  reshredded: string[];
  /** The shred lists applied (none: no list beside the backup). */
  shredLists: string[];
}> {
  const manifest = await verifyBackup(o.manifestPath, o.masterKeys);
  // Read (and verify) the shred lists before touching the target: a tampered list refuses the restore.
  const besides = path.join(path.dirname(o.manifestPath), SHRED_LIST_FILE);
  const listPaths =
    o.shredLists ??
    ((await stat(besides).then(
      () => true,
      () => false,
    ))
      ? [besides]
      : []);
  const toShred = new Set<string>();
  for (const p of listPaths) for (const t of (await readShredList(p, o.masterKeys)).tenants) toShred.add(t.tenantId);
  const c = new pg.Client({ connectionString: o.targetUrl });
  await c.connect();
  try {
    const existing = await tables(c);
    if (existing.length > 0)
      throw new BackupRefused(
        "RESTORE_TARGET_NOT_EMPTY",
        `the target database already has ${existing.length} table(s) (e.g. ${existing[0]}); restore only into an empty database`,
      );
  } finally {
    await c.end().catch(() => undefined);
  }
  const dir = path.dirname(o.manifestPath);
  const plainFile = path.join(dir, `.${manifest.id}.restore.partial`);
  try {
    const e = manifest.encryption;
    const key = derive(o.masterKeys, e.masterKeyVersion, Buffer.from(e.salt, "base64"), "nexus.backup.v1.encrypt");
    const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(e.iv, "base64"));
    decipher.setAAD(Buffer.from(`${BACKUP_FORMAT}\n${manifest.id}`));
    decipher.setAuthTag(Buffer.from(e.tag, "base64"));
    try {
      await pipeline(createReadStream(path.join(dir, path.basename(manifest.file))), decipher, createWriteStream(plainFile));
    } catch (err) {
      throw new BackupRefused("BACKUP_CORRUPT", `the backup does not decrypt (authentication failed): ${(err as Error).message}`);
    }
    await run(o.pgRestore ?? "pg_restore", ["--no-owner", "--no-privileges", "--exit-on-error", "--dbname", o.targetUrl, plainFile]);
  } finally {
    await rm(plainFile, { force: true });
  }
  const check = new pg.Client({ connectionString: o.targetUrl });
  await check.connect();
  try {
    const counts = await rowCounts(check);
    const diff = Object.keys({ ...counts, ...manifest.rowCounts }).filter((t) => counts[t] !== manifest.rowCounts[t]);
    if (diff.length > 0)
      throw new BackupRefused(
        "BACKUP_CORRUPT",
        `restored row counts differ from the manifest for ${diff.map((t) => `${t} (${counts[t] ?? "missing"} ≠ ${manifest.rowCounts[t] ?? "missing"})`).join(", ")}`,
      );
    let reshredded: string[] = [];
    if (toShred.size > 0 && counts["platform.data_keys"] !== undefined) {
      const { rows } = await check.query<{ tenant_id: string }>(
        `UPDATE platform.data_keys SET wrapped = NULL, destroyed_at = now() WHERE tenant_id = ANY($1::text[]) AND wrapped IS NOT NULL
         RETURNING tenant_id`,
        [[...toShred]],
      );
      reshredded = [...new Set(rows.map((r) => r.tenant_id))].sort();
    }
    return { manifest, rowCounts: counts, reshredded, shredLists: listPaths };
  } finally {
    await check.end().catch(() => undefined);
  }
}

/** What a restore drill checked. */
export interface DrillReport {
  backupId: string;
  database: string;
  tables: number;
  rows: number;
  auditChains: Array<{ tenantId: string; ok: boolean; entries: number }>;
  search?: { tenantId: string; corpusId: string; query: string; hits: number; opened: boolean };
  ok: boolean;
  seconds: number;
}

/**
 * The restore drill: restores the backup into a new scratch database on the server of
 * `serverUrl`, checks the row counts, verifies every tenant's audit hash chain, runs a search
 * (the word of a stored chunk must find it, and its sealed text must open with the master
 * keys), then drops the scratch database unless `keep`.
 */
export async function restoreDrill(o: {
  manifestPath: string;
  masterKeys: MasterKeys;
  serverUrl: string;
  keep?: boolean;
  pgRestore?: string;
}): Promise<DrillReport> {
  const started = performance.now();
  const scratch = await createScratchDatabase(o.serverUrl, "nexus_drill");
  const name = scratch.name;
  const url = new URL(scratch.url);
  try {
    const { manifest, rowCounts: counts } = await restore({
      manifestPath: o.manifestPath,
      masterKeys: o.masterKeys,
      targetUrl: url.toString(),
      ...(o.pgRestore ? { pgRestore: o.pgRestore } : {}),
    });
    const db = await createPgDatabase({ url: url.toString(), poolSize: 2 });
    try {
      const auditChains: DrillReport["auditChains"] = [];
      if (counts["audit.entries"] !== undefined) {
        const audit = new AuditApplication({
          store: createPostgresAuditStore(db),
          clock: () => new Date(),
          logger: pino({ level: "silent" }),
          // Chains shortened by retention verify from their signed checkpoint.
          checkpointSigned: checkpointVerifier(createKeyring({ db, masterKeys: o.masterKeys })),
        });
        const { rows } = await db.query<{ tenant_id: string }>("SELECT DISTINCT tenant_id FROM audit.entries ORDER BY 1");
        for (const r of rows) {
          const v = await audit.verify(r.tenant_id);
          auditChains.push({ tenantId: r.tenant_id, ok: v.ok, entries: v.entriesChecked });
        }
      }
      let search: DrillReport["search"];
      if ((counts["retrieval.chunks"] ?? 0) > 0) {
        const { rows } = await db.query<{ tenant_id: string; corpus_id: string; word: string }>(
          `SELECT tenant_id, corpus_id, (SELECT word FROM ts_stat(format('SELECT tsv FROM retrieval.chunks WHERE tenant_id = %L AND document_id = %L AND ordinal = %s', tenant_id, document_id, ordinal)) ORDER BY length(word) DESC, word LIMIT 1) AS word
           FROM retrieval.chunks c
           WHERE NOT EXISTS (SELECT 1 FROM platform.data_keys k WHERE k.tenant_id = c.tenant_id GROUP BY k.tenant_id HAVING bool_and(k.wrapped IS NULL))
           ORDER BY tenant_id, document_id, ordinal LIMIT 1`,
        );
        const probe = rows[0];
        if (probe) {
          const statement = buildSearchStatement({
            tenantId: probe.tenant_id,
            corpusId: probe.corpus_id,
            text: probe.word,
            topK: 5,
            ranking: "lexical",
          });
          const hits = (await db.query<{ text: string }>(statement.sql, statement.params)).rows;
          const cipher = createFieldCipher(createKeyring({ db, masterKeys: o.masterKeys }), "documents", "auto");
          let opened = false;
          if (hits[0]) {
            await cipher.openText(probe.tenant_id, hits[0].text);
            opened = true;
          }
          search = { tenantId: probe.tenant_id, corpusId: probe.corpus_id, query: probe.word, hits: hits.length, opened };
        }
      }
      const ok = auditChains.every((a) => a.ok) && (search === undefined || (search.hits > 0 && search.opened));
      return {
        backupId: manifest.id,
        database: name,
        tables: Object.keys(counts).length,
        rows: Object.values(counts).reduce((a, b) => a + b, 0),
        auditChains,
        ...(search ? { search } : {}),
        ok,
        seconds: (performance.now() - started) / 1000,
      };
    } finally {
      await db.close();
    }
  } finally {
    if (!o.keep) await scratch.drop();
  }
}

/**
 * The shred list (docs/governance.md#crypto-shredding-and-older-backups): every tenant whose
 * keys were crypto-shredded, kept beside the backups in `shred-list.json`, signed with a key
 * derived from the master key. Each backup merges the tenants shredded in its snapshot into it
 * (it never shrinks); each restore re-applies it, so a backup taken *before* a shred does not
 * make the shredded tenant readable again.
 */
export const SHRED_LIST_FILE = "shred-list.json";
const SHRED_LIST_FORMAT = "nexus-shred-list/1";

export interface ShreddedTenant {
  tenantId: string;
  shreddedAt: string;
}

export interface ShredList {
  format: typeof SHRED_LIST_FORMAT;
  updatedAt: string;
  tenants: ShreddedTenant[];
  masterKeyVersion: number;
  salt: string;
  signature: string;
}

function signShredList(masterKeys: MasterKeys, l: Omit<ShredList, "signature">): string {
  const key = derive(masterKeys, l.masterKeyVersion, Buffer.from(l.salt, "base64"), "nexus.shred-list.v1.sign");
  return createHmac("sha256", key)
    .update(JSON.stringify([l.format, l.updatedAt, l.tenants, l.masterKeyVersion, l.salt]))
    .digest("hex");
}

/** Tenants whose every data key is destroyed (crypto-shredded), in the database `c` reads. */
async function shreddedTenants(c: pg.Client): Promise<ShreddedTenant[]> {
  const exists = await c.query("SELECT 1 FROM information_schema.tables WHERE table_schema = 'platform' AND table_name = 'data_keys'");
  if (exists.rowCount === 0) return [];
  const { rows } = await c.query<{ tenant_id: string; at: Date }>(
    `SELECT tenant_id, max(destroyed_at) AS at FROM platform.data_keys GROUP BY tenant_id HAVING bool_and(wrapped IS NULL) ORDER BY tenant_id`,
  );
  return rows.map((r) => ({ tenantId: r.tenant_id, shreddedAt: r.at.toISOString() }));
}

/** Reads and verifies a shred list; SHRED_LIST_INVALID when it was altered or is not one. */
export async function readShredList(file: string, masterKeys: MasterKeys): Promise<ShredList> {
  let list: ShredList;
  try {
    list = JSON.parse(await readFile(file, "utf8")) as ShredList;
  } catch (err) {
    throw new BackupRefused("SHRED_LIST_INVALID", `${file} is not a shred list: ${(err as Error).message}`);
  }
  if (list?.format !== SHRED_LIST_FORMAT || !Array.isArray(list.tenants) || typeof list.signature !== "string")
    throw new BackupRefused("SHRED_LIST_INVALID", `${file} is not a ${SHRED_LIST_FORMAT} file`);
  const { signature, ...unsigned } = list;
  if (!sameHex(signShredList(masterKeys, unsigned), signature))
    throw new BackupRefused(
      "SHRED_LIST_INVALID",
      `the shred list ${file} does not verify (altered, or made with another master key); refusing to restore without it — pass --shred-list with a valid one`,
    );
  return list;
}

/** Merges `shredded` into the directory's shred list (created when missing; never shrinks). */
export async function updateShredList(
  dir: string,
  masterKeys: MasterKeys,
  shredded: readonly ShreddedTenant[],
): Promise<ShredList | undefined> {
  const file = path.join(dir, SHRED_LIST_FILE);
  const existing = await stat(file).then(
    () => readShredList(file, masterKeys),
    () => undefined,
  );
  const byTenant = new Map((existing?.tenants ?? []).map((t) => [t.tenantId, t]));
  let added = 0;
  for (const t of shredded)
    if (!byTenant.has(t.tenantId)) {
      byTenant.set(t.tenantId, t);
      added++;
    }
  if (existing && added === 0 && existing.masterKeyVersion === masterKeys.current) return existing;
  if (!existing && byTenant.size === 0) return undefined;
  const unsigned: Omit<ShredList, "signature"> = {
    format: SHRED_LIST_FORMAT,
    updatedAt: new Date().toISOString(),
    tenants: [...byTenant.values()].sort((a, b) => a.tenantId.localeCompare(b.tenantId)),
    masterKeyVersion: masterKeys.current,
    salt: randomBytes(16).toString("base64"),
  };
  const list: ShredList = { ...unsigned, signature: signShredList(masterKeys, unsigned) };
  await writeFile(`${file}.partial`, `${JSON.stringify(list, null, 2)}\n`);
  await rename(`${file}.partial`, file);
  return list;
}

/**
 * The keyring's `onShredded` hook when a backup directory is configured (NEXUS_BACKUP_DIR):
 * a shredded tenant goes into that directory's shred list at the moment of the shred, so a
 * restore of any earlier backup destroys its keys again even before the next backup runs.
 */
export function shredListRecorder(dir: string, masterKeys: MasterKeys): (tenantId: string) => Promise<void> {
  return async (tenantId) => {
    await mkdir(dir, { recursive: true });
    await updateShredList(dir, masterKeys, [{ tenantId, shreddedAt: new Date().toISOString() }]);
  };
}

/**
 * A new empty database on the PostgreSQL server `serverUrl` names (`<prefix>_<random>`), and a
 * way to drop it: the restore drill's target, and the benchmarks' fresh databases.
 */
export async function createScratchDatabase(
  serverUrl: string,
  prefix: string,
): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(5).toString("hex")}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: serverUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE "${name}"`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { name, url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
}
