import { Code, ConnectError } from "@connectrpc/connect";
import { DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import type { NexusClient } from "../../client/index.js";
import { DEMO_DOCUMENTS } from "./demo-documents.js";

/** Id of the demo corpus (also `nexus ask`'s default corpus). */
export const DEMO_CORPUS_ID = "nexus-docs";

/** Options of {@link seedDemoCorpus}. */
export interface SeedDemoCorpusOptions {
  /** Corpus to seed. Default {@link DEMO_CORPUS_ID}. */
  corpusId?: string;
  /** How long to wait for the documents to be ingested. Default 120 000 ms. */
  timeoutMs?: number;
  /** How often to look. Default 100 ms. */
  pollMs?: number;
}

/** What {@link seedDemoCorpus} did. */
export interface SeededDemoCorpus {
  corpusId: string;
  /** False when the corpus existed already. */
  createdCorpus: boolean;
  /** Documents queued by this call (0 when all were there with the same content). */
  queued: number;
  /** Documents in the corpus that are ingested. */
  ingested: number;
}

/**
 * Seeds the demo corpus through the public API (any tenant key that may create corpora and
 * ingest, e.g. the demo tenant's owner key): creates the corpus `nexus-docs` unless it exists,
 * ingests the demo documents (same ids and content → nothing changes, so calling it again is
 * harmless) and waits until every one is ingested. Throws when one fails or the wait runs out.
 *
 *   const nexus = createNexusClient({ baseUrl: url, apiKey: ownerKey });
 *   await seedDemoCorpus(nexus);
 */
export async function seedDemoCorpus(client: NexusClient, options: SeedDemoCorpusOptions = {}): Promise<SeededDemoCorpus> {
  const corpusId = options.corpusId ?? DEMO_CORPUS_ID;
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  const pollMs = options.pollMs ?? 100;
  let createdCorpus = true;
  try {
    await client.retrieval.createCorpus({
      corpusId,
      displayName: "Nexus documentation",
      description: "How to use Nexus: getting started, ingesting documents, asking questions, API keys, quotas.",
    });
  } catch (err) {
    if (!(err instanceof ConnectError && err.code === Code.AlreadyExists)) throw err;
    createdCorpus = false;
  }
  let queued = 0;
  for (const doc of DEMO_DOCUMENTS) {
    const res = await client.ingestion.ingestText({
      corpusId,
      documentId: doc.id,
      text: doc.text,
      filename: doc.filename,
      mediaType: "text/markdown",
      metadata: { source: "nexus-demo" },
    });
    if (!res.unchanged) queued += 1;
  }
  const pending = new Set(DEMO_DOCUMENTS.map((d) => d.id));
  while (pending.size > 0) {
    for (const id of [...pending]) {
      const { document } = await client.ingestion.getDocument({ documentId: id });
      if (document?.status === DocumentStatus.SUCCEEDED) pending.delete(id);
      else if (document?.status === DocumentStatus.FAILED)
        throw new Error(`demo document ${id} failed to ingest: ${document.failureReason}`);
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) throw new Error(`demo documents not ingested in time: ${[...pending].join(", ")}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return { corpusId, createdCorpus, queued, ingested: DEMO_DOCUMENTS.length };
}
