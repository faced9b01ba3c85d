import { createClient, type Transport } from "@connectrpc/connect";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { Retriever } from "../ports.js";

/** Longest query Search accepts (code points). */
export const MAX_QUERY_CHARS = 4000;

/**
 * The retrieval service's Search over a gRPC transport (`deps.peers.transport("retrieval")`,
 * resolved at call time), on behalf of the caller: the caller's `authorization` travels with
 * the call, so retrieval applies the caller's own tenant and permissions.
 */
export function createGrpcRetriever(transport: () => Transport): Retriever {
  return {
    async search(input, call) {
      const client = createClient(RetrievalService, transport());
      const query = [...input.query].slice(0, MAX_QUERY_CHARS).join("");
      // Document policies on the Run action apply to this search too (docs/identity.md, "Policies"):
      // the header can only narrow what the caller sees.
      const headers = new Headers(call.headers);
      headers.set("nexus-action", "Run");
      const res = await client.search(
        { corpusId: input.corpusId, query, ...(input.topK !== undefined ? { topK: input.topK } : {}) },
        { headers, signal: call.signal, ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}) },
      );
      return {
        passages: res.hits.map((h) => ({
          documentId: h.documentId,
          chunkOrdinal: h.chunkOrdinal,
          charStart: h.charStart,
          charEnd: h.charEnd,
          text: h.text,
          score: h.fusedScore,
          filename: h.filename,
        })),
      };
    },
  };
}
