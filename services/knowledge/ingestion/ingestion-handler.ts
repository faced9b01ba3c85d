import { createHash, randomBytes } from "node:crypto";
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { DeadLetterSchema } from "../../../gen/nexus/ingestion/v1/dead_letter_pb.js";
import type { ChunkingOptions } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import {
  type DeleteDocumentRequest,
  DeleteDocumentResponseSchema,
  type GetDocumentRequest,
  GetDocumentResponseSchema,
  type IngestionService,
  type IngestTextRequest,
  IngestTextResponseSchema,
  type ListDeadLettersRequest,
  ListDeadLettersResponseSchema,
  type ListDocumentsRequest,
  ListDocumentsResponseSchema,
  type ReindexDocumentRequest,
  ReindexDocumentResponseSchema,
  type ReplayDeadLetterRequest,
  ReplayDeadLetterResponseSchema,
  type UploadDocumentRequest,
  UploadDocumentResponseSchema,
  type WatchDocumentRequest,
  type WatchDocumentResponse,
  WatchDocumentResponseSchema,
} from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { platformPrincipal, tenantPrincipal } from "../../kernel/authz/tenant-scope.js";
import { executeInTransaction } from "../../kernel/commands/index.js";
import type { TenantPrincipal } from "../../kernel/context.js";
import { PG_ERRORS, pgErrorCode } from "../../kernel/db/pg-error.js";
import type { Database } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import { metadataToJson } from "../../kernel/events/event-metadata.js";
import type { DeadLetterStore } from "../../kernel/events/ports.js";
import { assertNoLegalHold } from "../../kernel/governance/index.js";
import { counterPosition, pageTokens, sequencePosition } from "../../kernel/paging/index.js";
import {
  type AccessFilter,
  accessFilterOf,
  decideDocument,
  dropDocumentAccess,
  hasResidual,
  readerOf,
  recordAccessDenied,
  recordOwner,
  withheldDocumentsByRule,
} from "../retrieval/adapters/postgres-document-access.js";
import { accessCache, readLabelRules, recordWithheld } from "../retrieval/adapters/postgres-policies.js";
import type { ChunkIndex } from "../retrieval/ports.js";
import { type ChunkingSettings, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE } from "./chunking/chunker.js";
import type { DocumentCommand, DocumentState, DocumentStatusName } from "./document.js";
import type { DocumentAggregate } from "./document-aggregate.js";
import { documentMessage, statusName } from "./document-events.js";
import type { DocumentFeed, FeedChange } from "./document-feed.js";
import { documentHoldSubjects } from "./document-holds.js";
import { DocumentError } from "./parsers/document-error.js";
import { precheckContent } from "./parsers/extract-text.js";
import { MEDIA_TYPES, resolveMediaType, type SupportedMediaType } from "./parsers/media-types.js";
import type { ContentStore, DocumentKey, DocumentRepository } from "./ports.js";

/** ListDocuments page tokens: the last document row's sequence, bound to the filters. */
const documentPageTokens = pageTokens(sequencePosition);
/** ListDeadLetters page tokens: the last dead letter's sequence, bound to the consumer filter. */
const deadLetterPageTokens = pageTokens(counterPosition);

/** The ports the ingestion handler works with. */
export interface IngestionPorts {
  db: Database;
  /** Every state change of a document goes through it (document-aggregate.ts). */
  aggregate: DocumentAggregate;
  documents: DocumentRepository;
  contents: ContentStore;
  chunkIndex: ChunkIndex;
  deadLetters: DeadLetterStore;
  feed: DocumentFeed;
  clock: () => Date;
  logger: Logger;
  /** Largest upload in bytes (NEXUS_MAX_UPLOAD_BYTES). */
  maxUploadBytes: number;
  /** How often WatchDocument re-reads the document without a notification. Default 1 000 ms. */
  watchPollMs?: number;
}

/** What one ingest (text or upload) carries. */
interface IngestInput {
  corpusId: string;
  documentId: string;
  filename: string;
  mediaType: SupportedMediaType;
  bytes: Uint8Array;
  metadata: JsonObject;
  overwrite: boolean;
  chunking: ChunkingOptions | undefined;
}

function newDocumentId(): string {
  return `doc-${randomBytes(8).toString("hex")}`;
}

/** Chunking options with the defaults filled in; overlap ≥ size is refused up front. */
export function chunkingSettings(size: number | undefined, overlap: number | undefined): ChunkingSettings {
  const s = { size: size ?? DEFAULT_CHUNK_SIZE, overlap: overlap ?? DEFAULT_CHUNK_OVERLAP };
  if (s.overlap >= s.size) {
    throw domainError("INVALID_ARGUMENT", `chunk_overlap (${s.overlap}) must be less than chunk_size (${s.size})`, {
      field: "chunk_overlap",
    });
  }
  return s;
}

function documentErrorToDomain(err: unknown): unknown {
  return err instanceof DocumentError ? domainError(err.reason, err.message, {}, { cause: err }) : err;
}

const isFinal = (d: DocumentState) => d.status === "succeeded" || d.status === "failed";

/**
 * `nexus.ingestion.v1.IngestionService`: documents in, lifecycle out. State changes are
 * commands on the document aggregate, run by the kernel's command helper (state and events
 * in one transaction); the DocumentQueued event is the ingestion job the workers consume.
 */
export class IngestionHandler implements ServiceImpl<typeof IngestionService> {
  constructor(private readonly ports: IngestionPorts) {}

  private async ingest(principal: TenantPrincipal, input: IngestInput): Promise<{ document: DocumentState; unchanged: boolean }> {
    const { db, aggregate, contents, chunkIndex, clock } = this.ports;
    const chunking = chunkingSettings(input.chunking?.chunkSize, input.chunking?.chunkOverlap);
    const sha = createHash("sha256").update(input.bytes).digest("hex");
    const key: DocumentKey = { tenantId: principal.tenantId, documentId: input.documentId || newDocumentId() };
    // Overwriting a document needs the right to read it (docs/identity.md, "Document access").
    if (input.documentId) await this.requireReadable(principal, input.documentId, "IngestText");
    await checkLabels(db, key.tenantId, input.metadata);
    const attempt = () =>
      db.transaction(async (tx) => {
        // Lock order everywhere: corpus settings → content → document → chunks → corpus
        // counters → released content → event log.
        const corpus = await chunkIndex.lookupCorpus(tx, key.tenantId, input.corpusId);
        if (!corpus) throw domainError("NOT_FOUND", `corpus ${input.corpusId} not found`, { corpus_id: input.corpusId });
        // Stored before the decision (the aggregate's save has no bytes): the same content
        // again writes nothing, and a refusal rolls the bytes back with the transaction.
        await contents.put(tx, key.tenantId, sha, input.bytes);
        const result = await executeInTransaction(
          tx,
          aggregate,
          key,
          {
            type: "IngestDocument",
            corpusId: input.corpusId,
            filename: input.filename,
            mediaType: input.mediaType,
            sizeBytes: input.bytes.byteLength,
            contentSha256: sha,
            metadata: input.metadata,
            overwrite: input.overwrite,
            chunking,
            at: clock(),
          },
          { metadata: { tenantId: key.tenantId, actor: principal.keyId } },
        );
        // No event: the same content under the same id, which is returned as it is.
        return { document: result.state!, unchanged: result.events.length === 0 };
      });
    let result: { document: DocumentState; unchanged: boolean };
    try {
      result = await attempt();
    } catch (err) {
      // Two first ingests of one id raced: the loser decides again against the winner's row.
      if (pgErrorCode(err) !== PG_ERRORS.UNIQUE_VIOLATION) throw err;
      result = await attempt();
    }
    // A person who uploads a document owns it: they keep reading it whatever its grants say.
    if (principal.userId) await recordOwner(db, key, principal.userId, principal.keyId);
    return result;
  }

  private message(d: DocumentState) {
    return documentMessage(d, this.ports.feed.progressOf(d));
  }

  async ingestText(req: IngestTextRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const mediaType = (req.mediaType || MEDIA_TYPES.text) as SupportedMediaType;
    const bytes = Buffer.from(req.text, "utf8");
    try {
      precheckContent(mediaType, bytes);
    } catch (err) {
      throw documentErrorToDomain(err);
    }
    const { document, unchanged } = await this.ingest(principal, {
      corpusId: req.corpusId,
      documentId: req.documentId,
      filename: req.filename,
      mediaType,
      bytes,
      metadata: req.metadata ?? {},
      overwrite: req.overwrite,
      chunking: req.chunking,
    });
    return create(IngestTextResponseSchema, { document: this.message(document), unchanged });
  }

  async uploadDocument(requests: AsyncIterable<UploadDocumentRequest>, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const { maxUploadBytes } = this.ports;
    let header: Extract<UploadDocumentRequest["part"], { case: "header" }>["value"] | undefined;
    const parts: Uint8Array[] = [];
    let size = 0;
    for await (const r of requests) {
      if (r.part.case === "header") {
        if (header) throw domainError("INVALID_ARGUMENT", "the upload sent a second header; send it once, first", { field: "header" });
        header = r.part.value;
        if (header.sizeBytes !== undefined && header.sizeBytes > BigInt(maxUploadBytes)) {
          throw domainError("REQUEST_TOO_LARGE", `the file is larger than this installation's upload limit of ${maxUploadBytes} bytes`, {
            limit_bytes: maxUploadBytes,
          });
        }
      } else if (r.part.case === "chunk") {
        if (!header) throw domainError("INVALID_ARGUMENT", "the upload must start with a header message", { field: "header" });
        size += r.part.value.byteLength;
        if (size > maxUploadBytes) {
          throw domainError("REQUEST_TOO_LARGE", `the file is larger than this installation's upload limit of ${maxUploadBytes} bytes`, {
            limit_bytes: maxUploadBytes,
          });
        }
        parts.push(r.part.value);
      }
    }
    if (!header) throw domainError("INVALID_ARGUMENT", "the upload sent no header", { field: "header" });
    if (size === 0) throw domainError("INVALID_ARGUMENT", "the upload sent no content", { field: "chunk" });
    const bytes = Buffer.concat(parts, size);
    if (header.sizeBytes !== undefined && header.sizeBytes !== BigInt(size)) {
      throw domainError("INVALID_ARGUMENT", `the header announced ${header.sizeBytes} bytes but ${size} arrived`, { field: "size_bytes" });
    }
    if (header.sha256 && createHash("sha256").update(bytes).digest("hex") !== header.sha256) {
      throw domainError("INVALID_ARGUMENT", "the received bytes do not match the header's sha256", { field: "sha256" });
    }
    let mediaType: SupportedMediaType;
    try {
      mediaType = resolveMediaType(header.mediaType, header.filename, bytes);
      precheckContent(mediaType, bytes);
    } catch (err) {
      throw documentErrorToDomain(err);
    }
    const { document, unchanged } = await this.ingest(principal, {
      corpusId: header.corpusId,
      documentId: header.documentId,
      filename: header.filename,
      mediaType,
      bytes,
      metadata: header.metadata ?? {},
      overwrite: header.overwrite,
      chunking: header.chunking,
    });
    return create(UploadDocumentResponseSchema, { document: this.message(document), unchanged });
  }

  private async load(principal: TenantPrincipal, documentId: string): Promise<DocumentState> {
    const d = await this.ports.documents.get(this.ports.db, { tenantId: principal.tenantId, documentId });
    if (!d) throw domainError("NOT_FOUND", `document ${documentId} not found`, { document_id: documentId });
    return d;
  }

  async getDocument(req: GetDocumentRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const document = await this.load(principal, req.documentId);
    await this.requireReadable(principal, req.documentId, "GetDocument");
    return create(GetDocumentResponseSchema, { document: this.message(document) });
  }

  /**
   * Document access (docs/identity.md): a restricted document the caller may not read is
   * NOT_FOUND, like another tenant's, and the refusal is recorded with its deciding rule.
   */
  private async requireReadable(principal: TenantPrincipal, documentId: string, method: string): Promise<void> {
    const key = { tenantId: principal.tenantId, documentId };
    const decision = await decideDocument(this.ports.db, key, readerOf(principal), ["Read"]);
    if (decision.allowed) return;
    await recordAccessDenied(this.ports.db, key, {
      keyId: principal.keyId,
      userId: principal.userId ?? "",
      procedure: `/nexus.ingestion.v1.IngestionService/${method}`,
      rule: decision.policyIds.length > 0 ? decision.policyIds.map((id) => `policy:${id}`).join(",") : decision.rule,
    });
    throw domainError("NOT_FOUND", `document ${documentId} not found`, { document_id: documentId });
  }

  async listDocuments(req: ListDocumentsRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const statuses = [...new Set(req.statuses.map(statusName).filter((s): s is DocumentStatusName => s !== undefined))].sort();
    const filters = `documents|${req.corpusId}|${statuses.join(",")}`;
    const before = documentPageTokens.decode(req.pageToken, filters);
    const limit = req.pageSize || 50;
    const access = await accessFilterOf(this.ports.db, principal, ["Read"]);
    let page = await this.ports.documents.list(this.ports.db, principal.tenantId, {
      ...(req.corpusId ? { corpusId: req.corpusId } : {}),
      ...(statuses.length > 0 ? { statuses } : {}),
      ...(before !== undefined ? { beforeSeq: before } : {}),
      limit: limit + 1,
      access,
    });
    // Policies the SQL cannot express are decided per listed document (a page may come short).
    const residualWithheld = new Map<string, number>();
    if (hasResidual(access)) {
      const kept = [];
      for (const p of page) {
        const d = await decideDocument(this.ports.db, { tenantId: principal.tenantId, documentId: p.document.documentId }, access.reader, [
          "Read",
        ]);
        if (d.allowed) kept.push(p);
        else {
          const rule = d.policyIds.length > 0 ? d.policyIds.map((id) => `policy:${id}`).join(",") : "default deny";
          residualWithheld.set(rule, (residualWithheld.get(rule) ?? 0) + 1);
        }
      }
      page = kept;
    }
    this.auditWithheld(principal, { ...(req.corpusId ? { corpusId: req.corpusId } : {}), statuses }, access, residualWithheld);
    const shown = page.slice(0, limit);
    return create(ListDocumentsResponseSchema, {
      documents: shown.map((p) => this.message(p.document)),
      nextPageToken: page.length > limit ? documentPageTokens.encode(shown[shown.length - 1]!.seq, filters) : "",
    });
  }

  /** One audit record per ListDocuments call for the documents access withheld, by rule (after the answer). */
  private auditWithheld(
    principal: TenantPrincipal,
    listing: { corpusId?: string; statuses: readonly string[] },
    access: AccessFilter,
    residual: ReadonlyMap<string, number>,
  ): void {
    const { context } = access;
    if (!context.anyRestricted && !context.defaultDeny && context.policies.length === 0) return;
    const { db, logger } = this.ports;
    void withheldDocumentsByRule(db, principal.tenantId, listing, access)
      .then((byRule) => {
        for (const [rule, n] of residual) byRule.set(rule, (byRule.get(rule) ?? 0) + n);
        return recordWithheld(
          db,
          principal.tenantId,
          {
            keyId: principal.keyId,
            userId: principal.userId ?? "",
            procedure: "/nexus.ingestion.v1.IngestionService/ListDocuments",
            corpusId: listing.corpusId ?? "",
          },
          byRule,
        );
      })
      .catch((err: unknown) => logger.warn({ err }, "could not record the documents a listing withheld"));
  }

  async *watchDocument(req: WatchDocumentRequest, ctx: HandlerContext): AsyncIterable<WatchDocumentResponse> {
    const principal = tenantPrincipal(ctx);
    const { documents, db, feed } = this.ports;
    const key: DocumentKey = { tenantId: principal.tenantId, documentId: req.documentId };
    if ((await documents.get(db, key)) !== undefined) await this.requireReadable(principal, req.documentId, "WatchDocument");
    let wake: (() => void) | undefined;
    let stored = true;
    // Access is decided again when the tenant's grants, policies, label rules or settings change
    // (the access cache's events, from any replica) — and on every poll while that feed is down:
    // a watch the caller may no longer read ends as GetDocument would answer (NOT_FOUND, recorded).
    let recheck = false;
    const unsubscribe = feed.subscribe(key, (change: FeedChange) => {
      if (change === "stored") stored = true;
      wake?.();
    });
    const stopAccessWatch = accessCache.onChange((tenantId) => {
      if (tenantId !== undefined && tenantId !== key.tenantId) return;
      recheck = true;
      wake?.();
    });
    const abort = () => wake?.();
    ctx.signal.addEventListener("abort", abort);
    try {
      let state: DocumentState | undefined;
      let last = "";
      while (!ctx.signal.aborted) {
        const live = feed.progressOf(key);
        // While this process's worker holds the document (PGlite: inside its transaction),
        // progress comes from memory; the row is read again when it changes.
        if (stored || !state || !live || live.version !== state.version) {
          stored = false;
          state = await documents.get(db, key);
          if (!state) throw domainError("NOT_FOUND", `document ${req.documentId} not found`, { document_id: req.documentId });
        }
        if (recheck || !accessCache.live) {
          recheck = false;
          await this.requireReadable(principal, req.documentId, "WatchDocument");
        }
        const message = documentMessage(state, feed.progressOf(key));
        const fingerprint = [
          message.status,
          message.version,
          message.progress?.chunksDone,
          message.progress?.chunksTotal,
          message.attempts,
          message.deadLettered,
        ].join("|");
        if (fingerprint !== last) {
          last = fingerprint;
          yield create(WatchDocumentResponseSchema, { document: message });
        }
        if (isFinal(state) && !feed.progressOf(key)) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            stored = true;
            resolve();
          }, this.ports.watchPollMs ?? 1000);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      stopAccessWatch();
      ctx.signal.removeEventListener("abort", abort);
    }
  }

  /** Runs a command on an existing document, after share-locking its corpus (the lock order above). */
  private async command(principal: TenantPrincipal, documentId: string, command: DocumentCommand): Promise<DocumentState | undefined> {
    const { db, aggregate, documents, chunkIndex } = this.ports;
    const key: DocumentKey = { tenantId: principal.tenantId, documentId };
    return db.transaction(async (tx) => {
      const peek = await documents.get(tx, key);
      if (peek) await chunkIndex.lookupCorpus(tx, key.tenantId, peek.corpusId);
      const result = await executeInTransaction(tx, aggregate, key, command, {
        metadata: { tenantId: key.tenantId, actor: principal.keyId },
      });
      // A deleted document's access list goes with it (a new document under the id starts afresh).
      if (command.type === "DeleteDocument") await dropDocumentAccess(tx, key);
      return result.state;
    });
  }

  async reindexDocument(req: ReindexDocumentRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    await this.requireReadable(principal, req.documentId, "ReindexDocument");
    const chunking = chunkingSettings(req.chunkSize, req.chunkOverlap);
    const after = await this.command(principal, req.documentId, { type: "ReindexDocument", chunking, at: this.ports.clock() });
    return create(ReindexDocumentResponseSchema, { document: this.message(after!) });
  }

  async deleteDocument(req: DeleteDocumentRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    await this.requireReadable(principal, req.documentId, "DeleteDocument");
    // A legal hold on the tenant, the document, or the key or user that uploaded it
    // supersedes the request (LEGAL_HOLD_ACTIVE).
    await assertNoLegalHold(
      this.ports.db,
      principal.tenantId,
      await documentHoldSubjects(this.ports.db, principal.tenantId, req.documentId),
      `delete document ${req.documentId}`,
    );
    await this.command(principal, req.documentId, { type: "DeleteDocument" });
    return create(DeleteDocumentResponseSchema, {});
  }

  /**
   * Deletes a document for an erase request (docs/governance.md#data-subject-requests): the
   * same command as DeleteDocument (retrieval drops the chunks, the event is recorded), with
   * the legal hold check in its transaction. LEGAL_HOLD_ACTIVE when a hold covers it.
   */
  async eraseDocument(tenantId: string, documentId: string, actor: string, why = "erase"): Promise<void> {
    const { db, aggregate, documents, chunkIndex } = this.ports;
    const key: DocumentKey = { tenantId, documentId };
    await db.transaction(async (tx) => {
      await assertNoLegalHold(tx, tenantId, await documentHoldSubjects(tx, tenantId, documentId), `${why} document ${documentId}`);
      const peek = await documents.get(tx, key);
      if (!peek) return;
      await chunkIndex.lookupCorpus(tx, tenantId, peek.corpusId);
      await executeInTransaction(tx, aggregate, key, { type: "DeleteDocument" }, { metadata: { tenantId, actor } });
    });
  }

  async listDeadLetters(req: ListDeadLettersRequest, ctx: HandlerContext) {
    platformPrincipal(ctx);
    const filters = `dlq|${req.consumer}`;
    const afterSeq = deadLetterPageTokens.decode(req.pageToken, filters) ?? 0;
    const limit = req.pageSize || 100;
    const all = await this.ports.deadLetters.list({ ...(req.consumer ? { consumer: req.consumer } : {}), limit: 10_000 });
    const rest = all.filter((l) => l.seq > afterSeq);
    const shown = rest.slice(0, limit);
    return create(ListDeadLettersResponseSchema, {
      deadLetters: shown.map((l) =>
        create(DeadLetterSchema, {
          sequence: BigInt(l.seq),
          consumer: l.consumer,
          subject: l.subject,
          eventId: l.eventId,
          eventType: l.type,
          streamId: l.streamId,
          tenantId: l.metadata.tenantId ?? "",
          payload: (l.payload !== null && typeof l.payload === "object" && !Array.isArray(l.payload)
            ? l.payload
            : { value: l.payload }) as JsonObject,
          metadata: metadataToJson(l.metadata),
          deliveries: l.deliveryCount,
          lastError: l.error,
          deadLetteredAt: timestampFromDate(l.deadLetteredAt),
          replayCount: l.replayCount,
        }),
      ),
      nextPageToken: rest.length > limit ? deadLetterPageTokens.encode(shown[shown.length - 1]!.seq, filters) : "",
    });
  }

  async replayDeadLetter(req: ReplayDeadLetterRequest, ctx: HandlerContext) {
    platformPrincipal(ctx);
    if (req.sequence > BigInt(Number.MAX_SAFE_INTEGER)) throw domainError("NOT_FOUND", `no dead letter #${req.sequence}`);
    const r = await this.ports.deadLetters.replay(Number(req.sequence));
    return create(ReplayDeadLetterResponseSchema, {
      consumer: r.consumer,
      subject: r.subject,
      eventId: r.eventId,
      replayCount: r.replayCount,
    });
  }
}

/**
 * Labels (docs/identity.md, "Labels"): a metadata key the tenant's label rules name must hold a
 * string among the rule's allowed values (any string when the rule lists none).
 */
async function checkLabels(db: Database, tenantId: string, metadata: JsonObject): Promise<void> {
  const { rules } = await readLabelRules(db, tenantId);
  for (const rule of rules) {
    if (!(rule.key in metadata)) continue;
    const value = metadata[rule.key];
    if (typeof value !== "string" || (rule.allowedValues.length > 0 && !rule.allowedValues.includes(value))) {
      throw domainError(
        "INVALID_ARGUMENT",
        `label ${rule.key} must be ${rule.allowedValues.length > 0 ? `one of ${rule.allowedValues.join(", ")}` : "a string"}`,
        { field: `metadata.${rule.key}` },
      );
    }
  }
}
