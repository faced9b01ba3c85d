import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * AES-256-GCM in the one layout Nexus stores: a random 12-byte IV, the 16-byte tag, then the
 * ciphertext. `aad` (optional) is authenticated with it. Used by the keyring (wrapped data keys
 * and sealed values) and the idempotency layer's stored answers.
 */
export function sealAesGcm(key: Uint8Array, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  if (aad) cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]);
}

/** Opens what {@link sealAesGcm} sealed; throws when it was altered or the key or `aad` differ. */
export function openAesGcm(key: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): Buffer {
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const decipher = createDecipheriv("aes-256-gcm", key, buf.subarray(0, 12));
  if (aad) decipher.setAAD(aad);
  decipher.setAuthTag(buf.subarray(12, 28));
  return Buffer.concat([decipher.update(buf.subarray(28)), decipher.final()]);
}
