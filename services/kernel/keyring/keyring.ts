import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { Database, Queryable } from "../db/ports.js";
import { domainError } from "../errors.js";
import { assertTenantNotHeld } from "../governance/legal-holds.js";
import { openAesGcm, sealAesGcm } from "./aes-gcm.js";
import type { MasterKeys } from "./master-keys.js";

/** What a data key encrypts: one tenant's data of one kind ("documents", "integration.credentials", …). */
export interface KeyScope {
  tenantId: string;
  /** Lower-case letters, digits, dots, dashes and underscores; names what the key protects. */
  purpose: string;
}

/**
 * Envelope encryption for every service (`ctx.keyring`): AES-256-GCM under a data key per
 * tenant and purpose, the data keys stored only wrapped by a versioned master key
 * (key-encryption key, {@link MasterKeys}). A sealed value names the data key version that
 * sealed it, so rotation never breaks what was sealed before. The scope (tenant and purpose) is
 * authenticated with the ciphertext: a value copied to another tenant's row does not open.
 *
 * A cloud KMS can take the master key's place later by implementing wrap/unwrap of data keys
 * (docs/security.md); none can be tested here, so none is built.
 */
export interface Keyring {
  /** Whether a master key is configured; without one every seal and open fails with KEYRING_NOT_CONFIGURED. */
  readonly configured: boolean;
  seal(scope: KeyScope, plaintext: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  /** Throws DATA_LOSS DECRYPTION_FAILED for a tampered value, a wrong scope or a shredded key — never garbage. */
  open(scope: KeyScope, sealed: Uint8Array, aad?: Uint8Array): Promise<Uint8Array>;
  /** {@link seal} of UTF-8 text, as text: `nxk1.<base64url>` (fits a text column or a JSON field). */
  sealText(scope: KeyScope, plaintext: string): Promise<string>;
  openText(scope: KeyScope, sealed: string): Promise<string>;
  /** Whether a text looks sealed by this keyring (`nxk1.` prefix). */
  isSealedText(value: string): boolean;
  /** The data key version a sealed value names. */
  versionOf(sealed: Uint8Array | string): number;
  /** Starts a new data key version for the scope (new seals use it; old ones still open); returns it. */
  rotate(scope: KeyScope): Promise<number>;
  /** The scope's current data key version (0 when none was made yet). */
  currentVersion(scope: KeyScope): Promise<number>;
  /** Re-wraps every data key under the current master key version; returns how many changed. */
  rewrap(): Promise<number>;
  /** Destroys every data key of the tenant (crypto-shredding): its sealed data never opens again. */
  shred(tenantId: string): Promise<number>;
  /** Forgets cached data keys (after another replica rotated or shredded; the cache also expires by itself). */
  forget(): void;
  /**
   * The keyring for use inside a transaction `q`: its data key reads go through `q`, so a
   * transaction never waits for a second connection (a pool full of transactions waiting for
   * the keyring would deadlock; PGlite has only one connection). A scope's first data key made
   * through it is made inside the transaction (committed or rolled back with what it sealed),
   * and then nothing that view reads is cached.
   */
  using?(q: Queryable): Keyring;
}

const MAGIC = Buffer.from("NXK1");
const TEXT_PREFIX = "nxk1.";
const HEADER = MAGIC.length + 4 + 12 + 16;
const PURPOSE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface KeyringOptions {
  db: Database;
  /** Undefined: not configured (every seal/open refuses with KEYRING_NOT_CONFIGURED). */
  masterKeys: MasterKeys | undefined;
  logger?: Logger;
  /** How long an unwrapped data key and a scope's current version are cached. Default 5 s. */
  cacheMs?: number;
  clock?: () => number;
  /**
   * Called after a shred committed (also when the tenant was already shredded: a retried
   * shred repeats it). The runtime records the tenant in the backups' shred list here
   * (docs/governance.md#crypto-shredding), so a shred after the newest backup is listed at
   * once, not only by the next backup. A failure is the shred's failure (the keys stay
   * destroyed; retrying the shred retries this).
   */
  onShredded?: (tenantId: string) => Promise<void>;
}

function scopeAad(scope: KeyScope, version: number, aad: Uint8Array | undefined): Buffer {
  const head = Buffer.from(`nexus.keyring.v1\n${scope.tenantId}\n${scope.purpose}\n${version}\n`);
  return aad ? Buffer.concat([head, aad]) : head;
}

function wrapAad(scope: KeyScope, version: number, kekVersion: number): Buffer {
  return Buffer.from(`nexus.keyring.wrap.v1\n${scope.tenantId}\n${scope.purpose}\n${version}\n${kekVersion}`);
}

const decryptionFailed = (scope: KeyScope, why: string, cause?: unknown) =>
  domainError(
    "DECRYPTION_FAILED",
    `stored ${scope.purpose} data of this tenant cannot be decrypted (${why}); it was altered, belongs elsewhere, or its key was destroyed`,
    { purpose: scope.purpose },
    cause === undefined ? {} : { cause },
  );

/** Creates the keyring over `platform.data_keys` (keyringMigrations). */
export function createKeyring(options: KeyringOptions): Keyring {
  const keys = new Map<string, { key: Buffer; until: number }>();
  const currents = new Map<string, { version: number; until: number }>();
  // One view per transaction: a key a view made inside its transaction is uncommitted, and
  // every later call in that transaction must know not to cache what it reads.
  const views = new WeakMap<Queryable, Keyring>();
  const root = buildKeyring(options, options.db, false, keys, currents, (q) => {
    let view = views.get(q);
    if (!view) {
      view = buildKeyring(options, q, true, keys, currents, () => view!);
      views.set(q, view);
    }
    return view;
  });
  return root;
}

function buildKeyring(
  options: KeyringOptions,
  db: Queryable,
  inTransaction: boolean,
  keys: Map<string, { key: Buffer; until: number }>,
  currents: Map<string, { version: number; until: number }>,
  viewOf: (q: Queryable) => Keyring,
): Keyring {
  const { masterKeys } = options;
  let caching = true;
  const cacheMs = options.cacheMs ?? 5000;
  const now = options.clock ?? (() => performance.now());
  const scopeId = (s: KeyScope) => `${s.tenantId}\n${s.purpose}`;

  const requireMaster = (): MasterKeys => {
    if (masterKeys) return masterKeys;
    throw domainError(
      "KEYRING_NOT_CONFIGURED",
      "no master key is configured: set NEXUS_MASTER_KEYS or mount NEXUS_MASTER_KEY_FILE (docs/security.md)",
    );
  };
  const checkScope = (scope: KeyScope) => {
    if (!PURPOSE.test(scope.purpose)) throw new Error(`keyring purpose "${scope.purpose}" is not a lower-case name`);
    if (scope.tenantId === "") throw new Error("keyring scope needs a tenant id");
  };

  const unwrap = (scope: KeyScope, version: number, kekVersion: number, wrapped: Uint8Array): Buffer => {
    const kek = requireMaster().key(kekVersion);
    if (!kek)
      throw domainError(
        "KEYRING_NOT_CONFIGURED",
        `the data key of ${scope.purpose} v${version} is wrapped by master key version ${kekVersion}, which is not configured; add it back to NEXUS_MASTER_KEYS`,
        { kek_version: kekVersion },
      );
    return openAesGcm(kek, wrapped, wrapAad(scope, version, kekVersion));
  };
  const wrap = (scope: KeyScope, version: number, dataKey: Buffer): { kekVersion: number; wrapped: Buffer } => {
    const master = requireMaster();
    const kek = master.key(master.current)!;
    return { kekVersion: master.current, wrapped: sealAesGcm(kek, dataKey, wrapAad(scope, version, master.current)) };
  };

  const dataKey = async (scope: KeyScope, version: number): Promise<Buffer | undefined> => {
    const id = `${scopeId(scope)}\n${version}`;
    const hit = keys.get(id);
    if (hit && hit.until > now()) return hit.key;
    const { rows } = await db.query<{ kek_version: number; wrapped: Uint8Array | null }>(
      "SELECT kek_version, wrapped FROM platform.data_keys WHERE tenant_id = $1 AND purpose = $2 AND version = $3",
      [scope.tenantId, scope.purpose, version],
    );
    const row = rows[0];
    if (!row || row.wrapped === null) return undefined;
    const key = unwrap(scope, version, row.kek_version, row.wrapped);
    if (caching) keys.set(id, { key, until: now() + cacheMs });
    return key;
  };

  const currentVersion = async (scope: KeyScope): Promise<number> => {
    const hit = currents.get(scopeId(scope));
    if (hit && hit.until > now()) return hit.version;
    const { rows } = await db.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM platform.data_keys WHERE tenant_id = $1 AND purpose = $2 AND wrapped IS NOT NULL",
      [scope.tenantId, scope.purpose],
    );
    const version = rows[0]?.version ?? 0;
    if (version > 0 && caching) currents.set(scopeId(scope), { version, until: now() + cacheMs });
    return version;
  };

  /** Inserts version `version` unless a replica did first; either way that version exists after. */
  const createVersion = async (scope: KeyScope, version: number): Promise<void> => {
    const fresh = randomBytes(32);
    const { kekVersion, wrapped } = wrap(scope, version, fresh);
    // Made inside the caller's transaction: committed with the values it seals, or rolled
    // back with them; until then nothing this view reads is cached. (Made on another
    // connection instead, a pool full of transactions waiting for that connection would
    // deadlock.) A concurrent first seal elsewhere waits on the key's row, then uses it.
    if (inTransaction) caching = false;
    await db.query(
      `INSERT INTO platform.data_keys (tenant_id, purpose, version, kek_version, wrapped) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (tenant_id, purpose, version) DO NOTHING`,
      [scope.tenantId, scope.purpose, version, kekVersion, wrapped],
    );
  };

  const shredded = async (tenantId: string): Promise<boolean> => {
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM platform.data_keys WHERE tenant_id = $1 AND destroyed_at IS NOT NULL",
      [tenantId],
    );
    return (rows[0]?.n ?? 0) > 0;
  };

  const sealBytes = async (scope: KeyScope, plaintext: Uint8Array, aad?: Uint8Array): Promise<Buffer> => {
    checkScope(scope);
    requireMaster();
    let version = await currentVersion(scope);
    if (version === 0) {
      if (await shredded(scope.tenantId))
        throw domainError(
          "FAILED_PRECONDITION",
          "this tenant's keys were destroyed (the tenant was deleted); nothing new is encrypted for it",
        );
      await createVersion(scope, 1);
      version = await currentVersion(scope);
    }
    const key = await dataKey(scope, version);
    if (!key) {
      currents.delete(scopeId(scope));
      throw domainError("FAILED_PRECONDITION", `the ${scope.purpose} key of this tenant was destroyed; nothing new is encrypted for it`);
    }
    const head = Buffer.alloc(MAGIC.length + 4);
    MAGIC.copy(head);
    head.writeUInt32BE(version, MAGIC.length);
    return Buffer.concat([head, sealAesGcm(key, plaintext, scopeAad(scope, version, aad))]);
  };

  const versionOf = (sealed: Uint8Array | string): number => {
    const buf = typeof sealed === "string" ? textBytes(sealed) : Buffer.from(sealed);
    if (buf.length < HEADER || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return 0;
    return buf.readUInt32BE(MAGIC.length);
  };
  const textBytes = (sealed: string): Buffer =>
    sealed.startsWith(TEXT_PREFIX) ? Buffer.from(sealed.slice(TEXT_PREFIX.length), "base64url") : Buffer.alloc(0);

  const openBytes = async (scope: KeyScope, sealed: Uint8Array, aad?: Uint8Array): Promise<Buffer> => {
    checkScope(scope);
    requireMaster();
    const buf = Buffer.from(sealed);
    const version = versionOf(buf);
    if (version === 0) throw decryptionFailed(scope, "not a sealed value");
    const key = await dataKey(scope, version);
    if (!key) throw decryptionFailed(scope, `data key v${version} does not exist or was destroyed`);
    try {
      return openAesGcm(key, buf.subarray(MAGIC.length + 4), scopeAad(scope, version, aad));
    } catch (err) {
      throw decryptionFailed(scope, "authentication failed", err);
    }
  };

  return {
    configured: masterKeys !== undefined,
    seal: sealBytes,
    open: openBytes,
    async sealText(scope, plaintext) {
      return TEXT_PREFIX + (await sealBytes(scope, Buffer.from(plaintext, "utf8"))).toString("base64url");
    },
    async openText(scope, sealed) {
      if (!sealed.startsWith(TEXT_PREFIX)) throw decryptionFailed(scope, "not a sealed value");
      return (await openBytes(scope, textBytes(sealed))).toString("utf8");
    },
    isSealedText: (value) => value.startsWith(TEXT_PREFIX),
    versionOf,
    currentVersion: (scope) => {
      checkScope(scope);
      return currentVersion(scope);
    },
    async rotate(scope) {
      checkScope(scope);
      requireMaster();
      currents.delete(scopeId(scope));
      const current = await currentVersion(scope);
      // Two replicas rotating at once both end on the same new version (the insert is idempotent).
      await createVersion(scope, current + 1);
      currents.delete(scopeId(scope));
      await db.query(
        "UPDATE platform.data_keys SET retired_at = now() WHERE tenant_id = $1 AND purpose = $2 AND version <= $3 AND retired_at IS NULL",
        [scope.tenantId, scope.purpose, current],
      );
      return currentVersion(scope);
    },
    async rewrap() {
      const master = requireMaster();
      const { rows } = await db.query<{ tenant_id: string; purpose: string; version: number; kek_version: number; wrapped: Uint8Array }>(
        "SELECT tenant_id, purpose, version, kek_version, wrapped FROM platform.data_keys WHERE wrapped IS NOT NULL AND kek_version <> $1",
        [master.current],
      );
      let changed = 0;
      for (const row of rows) {
        const scope = { tenantId: row.tenant_id, purpose: row.purpose };
        const key = unwrap(scope, row.version, row.kek_version, row.wrapped);
        const { kekVersion, wrapped } = wrap(scope, row.version, key);
        const { rowCount } = await db.query(
          `UPDATE platform.data_keys SET kek_version = $5, wrapped = $6
           WHERE tenant_id = $1 AND purpose = $2 AND version = $3 AND kek_version = $4 AND wrapped IS NOT NULL`,
          [row.tenant_id, row.purpose, row.version, row.kek_version, kekVersion, wrapped],
        );
        changed += rowCount;
      }
      if (changed > 0) options.logger?.info({ changed, kek_version: master.current }, "data keys re-wrapped under the current master key");
      return changed;
    },
    async shred(tenantId) {
      // Shredding destroys everything of the tenant: refused while any legal hold of it is active.
      const destroy = async (q: Queryable) => {
        await assertTenantNotHeld(q, tenantId, `crypto-shred the keys of tenant ${tenantId}`);
        const r = await q.query(
          "UPDATE platform.data_keys SET wrapped = NULL, destroyed_at = now() WHERE tenant_id = $1 AND wrapped IS NOT NULL",
          [tenantId],
        );
        return r.rowCount;
      };
      const rowCount = inTransaction ? await destroy(db) : await options.db.transaction(destroy);
      // Nothing of this tenant may stay usable from the cache.
      for (const id of [...keys.keys()]) if (id.startsWith(`${tenantId}\n`)) keys.delete(id);
      for (const id of [...currents.keys()]) if (id.startsWith(`${tenantId}\n`)) currents.delete(id);
      await options.onShredded?.(tenantId);
      return rowCount;
    },
    forget() {
      keys.clear();
      currents.clear();
    },
    using(q) {
      return q === options.db ? this : viewOf(q);
    },
  };
}
