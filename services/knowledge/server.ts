import { IngestionService } from "../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { governanceMigrations } from "../kernel/governance/index.js";
import { defineService } from "../kernel/service/index.js";
import { ingestionMigrations } from "./ingestion/migrations.js";
import { createKnowledgeParts } from "./knowledge-parts.js";
import { retrievalMigrations } from "./retrieval/migrations.js";
import { knowledgeTenantData } from "./tenant-data.js";

/**
 * The knowledge service: documents in (`nexus.ingestion.v1.IngestionService`, with the
 * ingestion workers) and corpora and hybrid search (`nexus.retrieval.v1.RetrievalService`).
 * One bounded context: a worker replaces a document's chunks and records its outcome in one
 * transaction, so the chunk index and the documents share a database and a model. It deploys
 * as two roles: `ingestion` (its API and the workers; adding replicas adds workers) and
 * `retrieval` (corpora and Search). Fails at start-up on a PostgreSQL without pgvector unless
 * NEXUS_LEXICAL_ONLY=true.
 */
export const knowledgeService = defineService({
  name: "knowledge",
  apis: [IngestionService, RetrievalService],
  roles: {
    ingestion: { apis: [IngestionService] },
    retrieval: { apis: [RetrievalService] },
  },
  migrations: [retrievalMigrations, ingestionMigrations, governanceMigrations],
  dataDeleters: [knowledgeTenantData],
  build: (ctx) => createKnowledgeParts(ctx),
});
