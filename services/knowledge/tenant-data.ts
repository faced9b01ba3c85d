import { tenantRowsDeleter } from "../kernel/service/index.js";

/**
 * Knowledge's part of tenant offboarding: every document with its stored content, every
 * corpus with its chunk index, and the document access lists (ingestion and retrieval
 * schemas). Nothing is kept.
 */
export const knowledgeTenantData = tenantRowsDeleter("knowledge", [
  { table: "retrieval.document_grants" },
  { table: "retrieval.document_access" },
  { table: "retrieval.document_access_settings" },
  { table: "retrieval.policies" },
  { table: "retrieval.label_rules" },
  { table: "retrieval.chunks" },
  { table: "retrieval.corpus_index" },
  { table: "retrieval.corpora" },
  { table: "ingestion.contents" },
  { table: "ingestion.documents" },
]);
