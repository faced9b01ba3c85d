import { counter, gauge } from "../../kernel/metrics.js";

/**
 * Documents that finished ingestion, by outcome ("succeeded" | "failed"). Counted when the
 * outcome is recorded inside the worker's transaction, so a transaction that rolls back after
 * recording can count once more than the database holds (rare; dashboards show rates).
 */
export const documentsIngested = counter("nexus_documents_ingested_total", "Documents whose ingestion finished, by outcome.", ["outcome"]);

/** Documents waiting for or in ingestion (status queued or processing), installation-wide. */
export const ingestionQueueDepth = gauge("nexus_ingestion_queue_depth", "Documents queued or processing.", []);
