import { type TenantDataDeleter, tenantRowsDeleter } from "../kernel/service/index.js";
import { accessCache } from "./retrieval/adapters/postgres-policies.js";

/**
 * Knowledge's part of tenant offboarding: every document with its stored content, every
 * corpus with its chunk index, and the document access lists (ingestion and retrieval
 * schemas). Nothing is kept.
 */
const knowledgeRows = tenantRowsDeleter("knowledge", [
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

/**
 * The rows, then this process's cached policies and label rules of the tenant (other processes
 * keep theirs until their next event of the tenant; the offboarded tenant's calls are refused
 * at the gate, so nothing reads them).
 */
export const knowledgeTenantData: TenantDataDeleter = {
  ...knowledgeRows,
  async deleteTenantData(db, tenantId) {
    const deleted = await knowledgeRows.deleteTenantData(db, tenantId);
    accessCache.invalidate(tenantId);
    return deleted;
  },
};
