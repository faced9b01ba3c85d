import type { FieldCipher } from "../../../kernel/keyring/index.js";
import type { ContentStore } from "../ports.js";

/**
 * Original document bytes in `ingestion.contents` (bytea), once per tenant and SHA-256.
 * Bounded by NEXUS_MAX_UPLOAD_BYTES per document; content no document refers to is deleted
 * with the document that last referred to it. With a cipher the bytes are sealed ("documents"
 * purpose); the SHA-256 of the plaintext stays in the clear as the deduplication key.
 */
export function createPgContentStore(cipher?: FieldCipher): ContentStore {
  return {
    async put(tx, tenantId, sha256, plaintext) {
      const bytes = cipher ? await cipher.sealBytes(tenantId, plaintext, tx) : plaintext;
      await tx.query(
        `INSERT INTO ingestion.contents (tenant_id, sha256, bytes) VALUES ($1, $2, $3) ON CONFLICT (tenant_id, sha256) DO NOTHING`,
        [tenantId, sha256, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)],
      );
    },
    async get(q, tenantId, sha256) {
      const { rows } = await q.query<{ bytes: Uint8Array }>("SELECT bytes FROM ingestion.contents WHERE tenant_id = $1 AND sha256 = $2", [
        tenantId,
        sha256,
      ]);
      const stored = rows[0]?.bytes;
      return stored && cipher ? cipher.openBytes(tenantId, stored, q) : stored;
    },
    async release(tx, tenantId, sha256) {
      await tx.query(
        `DELETE FROM ingestion.contents c WHERE c.tenant_id = $1 AND c.sha256 = $2
           AND NOT EXISTS (SELECT 1 FROM ingestion.documents d WHERE d.tenant_id = $1 AND d.content_sha256 = $2)`,
        [tenantId, sha256],
      );
    },
  };
}
