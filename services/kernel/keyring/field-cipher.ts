import type { Queryable } from "../db/ports.js";
import type { Keyring } from "./keyring.js";

const MAGIC = Buffer.from("NXK1");

/** NEXUS_ENCRYPTION_AT_REST. */
export type EncryptionAtRest = "auto" | "on" | "off";

/**
 * One kind of stored field of a service (`purpose`: "documents", "sessions", …) sealed with the
 * keyring when encryption at rest is on. Reading opens sealed values and passes values written
 * in the clear (before encryption was turned on, or with it off) through unchanged, so turning
 * it on or off needs no migration; the re-encryption job ({@link reencryptField}) seals what
 * was left in the clear and moves old data key versions to the current one.
 */
export interface FieldCipher {
  /** Whether new values are sealed. */
  readonly sealing: boolean;
  readonly purpose: string;
  /** `q`: the transaction the call runs in, if any (PGlite has one connection; see Keyring.using). */
  sealText(tenantId: string, text: string, q?: Queryable): Promise<string>;
  openText(tenantId: string, stored: string, q?: Queryable): Promise<string>;
  /** Seals many values of one tenant. */
  sealTexts(tenantId: string, texts: readonly string[], q?: Queryable): Promise<string[]>;
  /** Opens many values of one tenant (the data key is unwrapped once and cached). */
  openTexts(tenantId: string, stored: readonly string[], q?: Queryable): Promise<string[]>;
  sealBytes(tenantId: string, bytes: Uint8Array, q?: Queryable): Promise<Uint8Array>;
  openBytes(tenantId: string, stored: Uint8Array, q?: Queryable): Promise<Uint8Array>;
}

/** Whether bytes are a keyring-sealed value (`NXK1` header). */
export function isSealedBytes(value: Uint8Array): boolean {
  return value.length > MAGIC.length + 4 && Buffer.from(value.buffer, value.byteOffset, MAGIC.length).equals(MAGIC);
}

/**
 * The cipher of one purpose: seals when `mode` is "on", or "auto" with a configured master
 * key; opens sealed values whatever the mode (a value sealed earlier stays readable after
 * encryption is turned off).
 */
export function createFieldCipher(keyring: Keyring, purpose: string, mode: EncryptionAtRest): FieldCipher {
  const sealing = mode === "on" || (mode === "auto" && keyring.configured);
  const scope = (tenantId: string) => ({ tenantId, purpose });
  const ring = (q: Queryable | undefined) => (q && keyring.using ? keyring.using(q) : keyring);
  const openText = (tenantId: string, stored: string, q?: Queryable) =>
    keyring.isSealedText(stored) ? ring(q).openText(scope(tenantId), stored) : Promise.resolve(stored);
  const sealText = (tenantId: string, text: string, q?: Queryable) =>
    sealing ? ring(q).sealText(scope(tenantId), text) : Promise.resolve(text);
  return {
    sealing,
    purpose,
    sealText,
    openText,
    async sealTexts(tenantId, texts, q) {
      if (!sealing) return [...texts];
      // The first one makes the tenant's data key if needed; the rest reuse it.
      const out: string[] = [];
      if (texts.length > 0) out.push(await sealText(tenantId, texts[0]!, q));
      out.push(...(await Promise.all(texts.slice(1).map((t) => sealText(tenantId, t, q)))));
      return out;
    },
    async openTexts(tenantId, stored, q) {
      const out: string[] = [];
      // One at a time inside a transaction (one connection); in parallel otherwise.
      if (q) for (const s of stored) out.push(await openText(tenantId, s, q));
      else out.push(...(await Promise.all(stored.map((s) => openText(tenantId, s)))));
      return out;
    },
    sealBytes: (tenantId, bytes, q) => (sealing ? ring(q).seal(scope(tenantId), bytes) : Promise.resolve(bytes)),
    openBytes: (tenantId, stored, q) => (isSealedBytes(stored) ? ring(q).open(scope(tenantId), stored) : Promise.resolve(stored)),
  };
}
