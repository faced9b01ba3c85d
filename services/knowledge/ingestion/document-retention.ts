import { errorMetadata, errorReason } from "../../kernel/errors.js";
import { type CustomRetention, newRetentionReport } from "../../kernel/governance/index.js";
import type { IngestionHandler } from "./ingestion-handler.js";

/**
 * The "documents" retention policy (docs/governance.md#retention): documents uploaded before
 * the cutoff are deleted through the DeleteDocument command — so retrieval drops their chunks,
 * the content goes when no document refers to it, and DocumentDeleted is recorded — one per
 * transaction with the legal hold check inside it (a hold on the tenant, the document, or the
 * key or user that uploaded it keeps the document). Documents cannot be anonymized: their
 * content is the data.
 */
export function documentRetention(handler: IngestionHandler): CustomRetention {
  return {
    category: "documents",
    target: "ingestion.documents",
    async apply(db, tenantId, action, cutoff) {
      const report = newRetentionReport(tenantId, "documents", "ingestion.documents", action, cutoff);
      const { rows } = await db.query<{ document_id: string }>(
        "SELECT document_id FROM ingestion.documents WHERE tenant_id = $1 AND created_at < $2 ORDER BY seq",
        [tenantId, cutoff],
      );
      report.expired = rows.length;
      if (rows.length === 0) return report;
      if (action === "anonymize") {
        report.skippedReason = "documents cannot be anonymized (their content is the data); set the documents policy to delete";
        return report;
      }
      const heldBy = new Set<string>();
      for (const { document_id } of rows) {
        try {
          await handler.eraseDocument(tenantId, document_id, "retention", "expire");
          report.removed++;
        } catch (err) {
          if (errorReason(err) !== "LEGAL_HOLD_ACTIVE") throw err;
          report.held++;
          heldBy.add(errorMetadata(err).hold_id ?? "");
        }
      }
      report.heldBy = [...heldBy].filter(Boolean).sort();
      if (report.held > 0) report.skippedReason = `${report.held} kept under legal hold`;
      return report;
    },
  };
}
