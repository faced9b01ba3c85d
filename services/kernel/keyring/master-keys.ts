import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

/**
 * The key-encryption keys (KEKs) of an installation, by version: 32 random bytes each. The
 * highest version wraps new data keys; older versions only unwrap until every data key was
 * re-wrapped ({@link Keyring.rewrap}). Written as `<version>:<base64 of 32 bytes>`, one per line
 * or comma-separated (NEXUS_MASTER_KEYS, or the file NEXUS_MASTER_KEY_FILE that the chart
 * mounts from a Kubernetes Secret).
 */
export interface MasterKeys {
  /** Where the keys came from (logs, /readyz): "env", a file path, or "generated:<path>". */
  readonly source: string;
  readonly current: number;
  key(version: number): Buffer | undefined;
  versions(): number[];
}

/** A value of NEXUS_MASTER_KEYS or a key file that is not `<version>:<base64 32 bytes>`, … */
export class MasterKeyFormatError extends Error {}

/** Parses `<version>:<base64>` entries (comma- or newline-separated; `#` starts a comment line). */
export function parseMasterKeys(text: string, source: string): MasterKeys {
  const keys = new Map<number, Buffer>();
  const entries = text
    .split(/[\n,]/)
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
  for (const entry of entries) {
    const m = /^(\d{1,9}):([A-Za-z0-9+/_-]+={0,2})$/.exec(entry);
    if (!m) throw new MasterKeyFormatError(`${source}: expected <version>:<base64 of 32 random bytes>, e.g. 1:$(openssl rand -base64 32)`);
    const version = Number(m[1]);
    const key = Buffer.from(m[2]!, m[2]!.includes("-") || m[2]!.includes("_") ? "base64url" : "base64");
    if (version < 1) throw new MasterKeyFormatError(`${source}: key versions start at 1`);
    if (key.length !== 32)
      throw new MasterKeyFormatError(`${source}: key version ${version} is ${key.length} bytes; a master key is 32 bytes`);
    if (keys.has(version)) throw new MasterKeyFormatError(`${source}: key version ${version} appears twice`);
    keys.set(version, key);
  }
  if (keys.size === 0) throw new MasterKeyFormatError(`${source}: no master key in it`);
  const current = Math.max(...keys.keys());
  return { source, current, key: (v) => keys.get(v), versions: () => [...keys.keys()].sort((a, b) => a - b) };
}

/** A fresh master-key line: `<version>:<base64>`. */
export function newMasterKeyLine(version = 1): string {
  return `${version}:${randomBytes(32).toString("base64")}`;
}

/**
 * The embedded default (`nexus dev`): the master key in `<dataDir>/master-keys`, created on first
 * start with mode 0600. Losing the file makes the encrypted data of that data directory unreadable,
 * which is the point of a key; it lives beside the PGlite files it protects only because `nexus
 * dev` is a single-machine development setup (docs/security.md).
 */
export async function loadOrCreateLocalMasterKeys(dataDir: string): Promise<MasterKeys> {
  const file = path.join(dataDir, "master-keys");
  try {
    return parseMasterKeys(await readFile(file, "utf8"), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const line = newMasterKeyLine(1);
  try {
    await writeFile(file, `# Nexus master key (nexus dev). Keep it secret; without it the encrypted data here is unreadable.\n${line}\n`, {
      mode: 0o600,
      flag: "wx",
    });
  } catch (err) {
    // Another process created it first: use theirs.
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  await chmod(file, 0o600).catch(() => undefined);
  const keys = parseMasterKeys(await readFile(file, "utf8"), file);
  return { ...keys, source: `generated:${file}` };
}

/**
 * The master keys a process uses: NEXUS_MASTER_KEYS, else the file NEXUS_MASTER_KEY_FILE when it
 * exists, else — only on the embedded database (`nexus dev`) — `<dataDir>/master-keys`, created on
 * first start. Undefined when none is configured on PostgreSQL: the keyring then refuses with
 * KEYRING_NOT_CONFIGURED (a generated per-process key would make replicas unable to read each
 * other's data). A malformed file stops the start with a message naming it.
 */
export async function resolveMasterKeys(options: {
  fromEnv: MasterKeys | undefined;
  file: string;
  embedded: boolean;
  dataDir: string;
}): Promise<MasterKeys | undefined> {
  if (options.fromEnv) return options.fromEnv;
  try {
    return parseMasterKeys(await readFile(options.file, "utf8"), options.file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  return options.embedded ? loadOrCreateLocalMasterKeys(options.dataDir) : undefined;
}
