import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * API key material: `nxs_<key id>_<secret>`.
 *
 * - key id: 24 lower-case hex characters (96 random bits), public — it names the key in
 *   logs, events and the API, and lets Authenticate find the key with one indexed read;
 * - secret: 256 random bits, base64url without padding (43 characters).
 *
 * Only the SHA-256 digest of the whole plaintext key is stored; the plaintext is returned
 * once and then exists only with its holder. A bootstrap key for Kubernetes can therefore be
 * given as its id plus `printf %s "$KEY" | sha256sum`.
 */

/** Prefix of every Nexus API key. */
export const KEY_PREFIX = "nxs_";

const KEY_ID = /^[A-Za-z0-9-]{1,64}$/;
const PLAINTEXT = /^nxs_([A-Za-z0-9-]{1,64})_([A-Za-z0-9_-]{43})$/;
const DIGEST_HEX = /^[0-9a-f]{64}$/;

/** A freshly generated key: its plaintext (shown once) and what is stored. */
export interface GeneratedKey {
  keyId: string;
  plaintext: string;
  digest: Buffer;
  displayPrefix: string;
}

/** A new random key id (24 hex characters). */
export function newKeyId(): string {
  return randomBytes(12).toString("hex");
}

/** Generates a key with a 256-bit random secret. `keyId` defaults to a new random id. */
export function generateApiKey(keyId: string = newKeyId()): GeneratedKey {
  if (!KEY_ID.test(keyId)) throw new Error(`invalid key id ${JSON.stringify(keyId)}: letters, digits and dashes, 1-64`);
  const secret = randomBytes(32).toString("base64url");
  const plaintext = `${KEY_PREFIX}${keyId}_${secret}`;
  return { keyId, plaintext, digest: digestOf(plaintext), displayPrefix: displayPrefixOf(keyId) };
}

/** SHA-256 of the plaintext key (what the database stores). */
export function digestOf(plaintext: string): Buffer {
  return createHash("sha256").update(plaintext, "utf8").digest();
}

/** The non-secret beginning of a key, `nxs_<key id>_`. */
export function displayPrefixOf(keyId: string): string {
  return `${KEY_PREFIX}${keyId}_`;
}

/** The key id of a well-formed presented key, or undefined when it is not a Nexus key. */
export function parseApiKey(presented: string): { keyId: string } | undefined {
  const m = PLAINTEXT.exec(presented);
  return m?.[1] ? { keyId: m[1] } : undefined;
}

/** True when `keyId` could name a key (letters, digits, dashes; 1-64). */
export function isKeyId(keyId: string): boolean {
  return KEY_ID.test(keyId);
}

/** Parses a hex SHA-256 digest (64 hex characters, any case). */
export function parseDigestHex(hex: string): Buffer | undefined {
  const lower = hex.trim().toLowerCase();
  return DIGEST_HEX.test(lower) ? Buffer.from(lower, "hex") : undefined;
}

/** A digest no key has, compared against when the key id is unknown so timing does not tell. */
const DECOY = digestOf("nxs_decoy");

/**
 * Whether the presented key matches the stored digest, compared in constant time. With no
 * stored digest (unknown key id) the comparison still runs, against a decoy.
 */
export function verifyApiKey(presented: string, stored: Uint8Array | undefined): boolean {
  const actual = digestOf(presented);
  const expected = stored !== undefined && stored.length === actual.length ? stored : DECOY;
  const same = timingSafeEqual(actual, expected);
  return same && stored !== undefined && expected !== DECOY;
}
