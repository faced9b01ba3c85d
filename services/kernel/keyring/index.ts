/**
 * The kernel keyring: envelope encryption (AES-256-GCM data keys per tenant and purpose, wrapped
 * by versioned master keys) that every service reaches as `ctx.keyring`. docs/security.md.
 */

export { createFieldCipher, type EncryptionAtRest, type FieldCipher, isSealedBytes } from "./field-cipher.js";
export { createKeyring, type Keyring, type KeyringOptions, type KeyScope } from "./keyring.js";
export {
  loadOrCreateLocalMasterKeys,
  MasterKeyFormatError,
  type MasterKeys,
  newMasterKeyLine,
  parseMasterKeys,
  resolveMasterKeys,
} from "./master-keys.js";
export { keyringMigrations } from "./migrations.js";
export {
  type FieldProgress,
  getKeyringJob,
  listKeyringJobs,
  type ReencryptJob,
  type ReencryptOptions,
  reencryptTask,
  runReencryptJobs,
  type SealedField,
  startKeyRotation,
} from "./reencrypt.js";
