import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { type Corpus, CorpusSchema } from "../../../gen/nexus/retrieval/v1/corpus_pb.js";
import {
  type CreateCorpusRequest,
  CreateCorpusResponseSchema,
  type DeleteCorpusRequest,
  DeleteCorpusResponseSchema,
  type DeletePolicyRequest,
  DeletePolicyResponseSchema,
  type GetCorpusRequest,
  GetCorpusResponseSchema,
  type GetDocumentAccessRequest,
  GetDocumentAccessResponseSchema,
  GranteeKind,
  type ListCorporaRequest,
  ListCorporaResponseSchema,
  type ListPoliciesRequest,
  ListPoliciesResponseSchema,
  type RetrievalService,
  type SavePolicyRequest,
  SavePolicyResponseSchema,
  SearchHitSchema,
  SearchMode,
  type SearchRequest,
  SearchResponseSchema,
  type SetDocumentAccessRequest,
  SetDocumentAccessResponseSchema,
  type SetDocumentAccessSettingsRequest,
  SetDocumentAccessSettingsResponseSchema,
  type SetLabelRulesRequest,
  SetLabelRulesResponseSchema,
  type SetPolicyEnabledRequest,
  SetPolicyEnabledResponseSchema,
  type SimulatePolicyRequest,
  SimulatePolicyResponseSchema,
  type UpdateCorpusRequest,
  UpdateCorpusResponseSchema,
} from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { authorizationRefusal } from "../../kernel/authz/refusal.js";
import { requireFeature } from "../../kernel/authz/require-feature.js";
import { tenantPrincipal } from "../../kernel/authz/tenant-scope.js";
import { executeCommand } from "../../kernel/commands/index.js";
import type { TenantPrincipal, TenantRole } from "../../kernel/context.js";
import { PG_ERRORS, pgErrorCode } from "../../kernel/db/pg-error.js";
import type { Database } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import { assertNoLegalHold } from "../../kernel/governance/index.js";
import { pageTokens, sequencePosition } from "../../kernel/paging/index.js";
import {
  accessFilterOf,
  decideDocument,
  documentAccessAggregate,
  readDocumentAccess,
  saveAccessSettings,
} from "./adapters/postgres-document-access.js";
import {
  accessCache,
  listPolicies,
  type PolicyCommand,
  policyAggregate,
  readLabelRules,
  recordWithheld,
  saveLabelRules,
} from "./adapters/postgres-policies.js";
import { withheldByRule } from "./adapters/postgres-search-index.js";
import type { CorpusCommand, CorpusEvent, CorpusState, UpdateCorpus } from "./corpus.js";
import { type CorpusAggregate, corpusAggregate } from "./corpus-aggregate.js";
import { type DocumentAccess, type DocumentGrant, rolesAtOrBelow } from "./document-access.js";
import { EmbeddingError, type EmbeddingModels } from "./embeddings/ports.js";
import { cedarSchema, type LabelRule, type PolicyAction, type StoredPolicy, schemaErrors, validatePolicy } from "./policy-engine.js";
import type { CorpusRepository, SearchIndex, SearchQuery, SearchRanking } from "./ports.js";
import {
  MAX_TOP_K,
  normalizeProviderConfig,
  PATCH_PROVIDER_CONFIG_FEATURE,
  PROVIDER_FEATURES,
  type ProviderConfig,
} from "./provider-config.js";

/** ListCorpora page tokens: the last corpus row's sequence. */
const corpusPageTokens = pageTokens(sequencePosition);

/** The ports the retrieval handler works with. */
export interface RetrievalPorts {
  db: Database;
  corpora: CorpusRepository;
  searchIndex: SearchIndex;
  models: EmbeddingModels;
  /** Vector search is available (pgvector present, lexical-only mode off). */
  vectors: boolean;
  clock: () => Date;
  logger: Logger;
}

/** Corpus state → API message. */
export function corpusMessage(c: CorpusState): Corpus {
  return create(CorpusSchema, {
    id: c.corpusId,
    tenantId: c.tenantId,
    displayName: c.displayName,
    description: c.description,
    providerConfig: c.providerConfig,
    embeddingModel: c.embeddingModel,
    embeddingDimensions: c.embeddingDimensions,
    documentCount: BigInt(c.documentCount),
    chunkCount: BigInt(c.chunkCount),
    reindexRequired: c.reindexRequired,
    createdAt: timestampFromDate(c.createdAt),
    updatedAt: timestampFromDate(c.updatedAt),
  });
}

function newCorpusId(): string {
  return `corpus-${randomBytes(8).toString("hex")}`;
}

const UPDATABLE = new Set(["display_name", "description", "provider_config", "embedding_model", "embedding_dimensions"]);

/**
 * `nexus.retrieval.v1.RetrievalService`: corpora (commands on the corpus aggregate, run by
 * the kernel's command helper: state and events in one transaction) and hybrid search. Every
 * call acts for the caller's tenant.
 */
export class RetrievalHandler implements ServiceImpl<typeof RetrievalService> {
  private readonly aggregate: CorpusAggregate;

  constructor(private readonly ports: RetrievalPorts) {
    this.aggregate = corpusAggregate({ corpora: ports.corpora, vectors: ports.vectors });
  }

  /** Runs a command on a corpus of the caller's tenant. */
  private async execute(
    principal: TenantPrincipal,
    corpusId: string,
    command: CorpusCommand,
  ): Promise<{ state: CorpusState | undefined; events: readonly CorpusEvent[] }> {
    try {
      return await executeCommand(this.ports.db, this.aggregate, { tenantId: principal.tenantId, corpusId }, command, {
        metadata: { tenantId: principal.tenantId, actor: principal.keyId },
      });
    } catch (err) {
      if (pgErrorCode(err) === PG_ERRORS.UNIQUE_VIOLATION) {
        throw domainError("ALREADY_EXISTS", `corpus ${corpusId} already exists`, { corpus_id: corpusId });
      }
      throw err;
    }
  }

  private providerConfig(input: CreateCorpusRequest["providerConfig"], principal: TenantPrincipal): ProviderConfig {
    const result = normalizeProviderConfig(input);
    if (result.kind === "invalid") throw domainError("INVALID_ARGUMENT", result.message, { field: "provider_config" });
    requireFeature(principal, PROVIDER_FEATURES[result.config.provider]);
    return result.config;
  }

  private embeddingSettings(model: string, dimensions: number): { model: string; dimensions: number } {
    const { models } = this.ports;
    const name = model || models.defaultModel;
    const dims = dimensions || models.defaultDimensions(name);
    if (!models.available(name)) {
      throw domainError(
        "INVALID_ARGUMENT",
        `embedding model "${name}" is not available: this installation has no OpenAI-compatible embeddings server (NEXUS_EMBEDDINGS_URL); hash-<dimensions> models work offline`,
        { field: "embedding_model" },
      );
    }
    return { model: models.canonicalModel(name, dims), dimensions: dims };
  }

  async createCorpus(req: CreateCorpusRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const providerConfig = this.providerConfig(req.providerConfig, principal);
    const embedding = this.embeddingSettings(req.embeddingModel, req.embeddingDimensions);
    const corpusId = req.corpusId || newCorpusId();
    const { state } = await this.execute(principal, corpusId, {
      type: "CreateCorpus",
      tenantId: principal.tenantId,
      corpusId,
      displayName: req.displayName,
      description: req.description,
      providerConfig,
      embeddingModel: embedding.model,
      embeddingDimensions: embedding.dimensions,
      at: this.ports.clock(),
    });
    return create(CreateCorpusResponseSchema, { corpus: corpusMessage(state!) });
  }

  async getCorpus(req: GetCorpusRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const corpus = await this.ports.corpora.get(this.ports.db, principal.tenantId, req.corpusId);
    if (!corpus) throw domainError("NOT_FOUND", `corpus ${req.corpusId} not found`, { corpus_id: req.corpusId });
    return create(GetCorpusResponseSchema, { corpus: corpusMessage(corpus) });
  }

  async listCorpora(req: ListCorporaRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const limit = req.pageSize || 50;
    const after = corpusPageTokens.decode(req.pageToken, "corpora");
    const page = await this.ports.corpora.list(this.ports.db, principal.tenantId, {
      ...(after !== undefined ? { afterSeq: after } : {}),
      limit: limit + 1,
    });
    const more = page.length > limit;
    const shown = page.slice(0, limit);
    return create(ListCorporaResponseSchema, {
      corpora: shown.map((p) => corpusMessage(p.corpus)),
      nextPageToken: more ? corpusPageTokens.encode(shown[shown.length - 1]!.seq, "corpora") : "",
    });
  }

  async updateCorpus(req: UpdateCorpusRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const paths = new Set(req.updateMask?.paths ?? []);
    const unknown = [...paths].find((p) => !UPDATABLE.has(p));
    if (paths.size === 0 || unknown !== undefined) {
      throw domainError("INVALID_ARGUMENT", `update_mask must name fields among ${[...UPDATABLE].join(", ")}`, { field: "update_mask" });
    }
    const changes: UpdateCorpus["changes"] = {};
    if (paths.has("display_name")) {
      if (!req.displayName) throw domainError("INVALID_ARGUMENT", "display_name cannot be empty", { field: "display_name" });
      changes.displayName = req.displayName;
    }
    if (paths.has("description")) changes.description = req.description;
    if (paths.has("provider_config")) {
      requireFeature(principal, PATCH_PROVIDER_CONFIG_FEATURE);
      changes.providerConfig = this.providerConfig(req.providerConfig, principal);
    }
    const { db, corpora } = this.ports;
    if (paths.has("embedding_model") || paths.has("embedding_dimensions")) {
      const current = await corpora.get(db, principal.tenantId, req.corpusId);
      if (!current) throw domainError("NOT_FOUND", `corpus ${req.corpusId} not found`, { corpus_id: req.corpusId });
      const model = paths.has("embedding_model") ? req.embeddingModel || this.ports.models.defaultModel : current.embeddingModel;
      // A new model without new dimensions takes the model's default size.
      const dims = paths.has("embedding_dimensions")
        ? req.embeddingDimensions
        : model === current.embeddingModel
          ? current.embeddingDimensions
          : 0;
      const embedding = this.embeddingSettings(model, dims);
      changes.embeddingModel = embedding.model;
      changes.embeddingDimensions = embedding.dimensions;
    }
    const { state, events } = await this.execute(principal, req.corpusId, { type: "UpdateCorpus", changes, at: this.ports.clock() });
    const updated = events.find((e) => e.type === "CorpusUpdated");
    if (updated) this.ports.logger.info({ corpusId: req.corpusId, changed: updated.changedFields }, "corpus updated");
    return create(UpdateCorpusResponseSchema, {
      corpus: corpusMessage(state!),
      reindexRequired: updated?.type === "CorpusUpdated" ? updated.reindexRequired : state!.reindexRequired,
    });
  }

  /**
   * DeleteCorpus destroys the corpus's documents: refused (LEGAL_HOLD_ACTIVE) under a tenant
   * hold or a hold on any document indexed in the corpus.
   */
  private async refuseUnderHold(tenantId: string, corpusId: string): Promise<void> {
    const { rows } = await this.ports.db.query<{ document_id: string }>(
      `SELECT DISTINCT h.subject_id AS document_id FROM platform.legal_holds h
       WHERE h.tenant_id = $1 AND h.scope = 'document' AND h.released_at IS NULL
         AND EXISTS (SELECT 1 FROM retrieval.chunks c WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.document_id = h.subject_id)`,
      [tenantId, corpusId],
    );
    await assertNoLegalHold(
      this.ports.db,
      tenantId,
      rows.map((r) => ({ scope: "document" as const, id: r.document_id })),
      `delete corpus ${corpusId}`,
    );
  }

  async deleteCorpus(req: DeleteCorpusRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    await this.refuseUnderHold(principal.tenantId, req.corpusId);
    await this.execute(principal, req.corpusId, { type: "DeleteCorpus", force: req.force });
    return create(DeleteCorpusResponseSchema, {});
  }

  async search(req: SearchRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const { db, corpora, models, searchIndex, vectors, logger } = this.ports;
    // The tenant's policies are read beside the corpus (one round trip less on a pool).
    const accessRead = accessFilterOf(db, principal, this.searchActions(ctx));
    accessRead.catch(() => undefined); // awaited below; a refusal before that must not leave it unhandled
    const corpus = await corpora.get(db, principal.tenantId, req.corpusId);
    if (!corpus) throw domainError("NOT_FOUND", `corpus ${req.corpusId} not found`, { corpus_id: req.corpusId });
    requireFeature(principal, PROVIDER_FEATURES[corpus.provider]);
    if (corpus.provider !== "local_pgvector") {
      throw domainError(
        "FAILED_PRECONDITION",
        `corpus ${corpus.corpusId} uses provider ${corpus.provider}, which this installation cannot reach; switch it to local_pgvector to search its documents here`,
        { corpus_id: corpus.corpusId, provider: corpus.provider },
      );
    }
    const topK = Math.min(MAX_TOP_K, req.topK ?? corpus.topKDefault);
    const requested = req.mode === SearchMode.UNSPECIFIED ? SearchMode.HYBRID : req.mode;
    if (requested === SearchMode.VECTOR && !vectors) {
      throw domainError("FAILED_PRECONDITION", "vector search is off in this installation (lexical-only mode); use HYBRID or LEXICAL", {
        mode: "VECTOR",
      });
    }
    let ranking: SearchRanking = requested === SearchMode.VECTOR ? "vector" : requested === SearchMode.LEXICAL ? "lexical" : "hybrid";
    if (!vectors) ranking = "lexical";
    let vector: Float32Array | undefined;
    if (ranking !== "lexical") {
      try {
        [vector] = await models.embedder(corpus.searchModel, corpus.searchDimensions).embed([req.query], { signal: ctx.signal });
      } catch (err) {
        if (!(err instanceof EmbeddingError)) throw err;
        if (ranking === "vector") {
          throw domainError(
            "DEPENDENCY_UNAVAILABLE",
            `the embedding model is unavailable: ${err.message}`,
            { model: corpus.searchModel },
            { cause: err },
          );
        }
        // Degrade rather than fail: full-text ranking still answers, and the response says so.
        logger.warn({ err, corpusId: corpus.corpusId }, "query embedding failed; searching lexically");
        ranking = "lexical";
      }
    }
    const query: SearchQuery = {
      tenantId: principal.tenantId,
      corpusId: corpus.corpusId,
      text: req.query,
      topK,
      ranking,
      ...(vector ? { vector, model: corpus.searchModel, dimensions: corpus.searchDimensions } : {}),
      ...(req.filter?.documentIds.length ? { documentIds: req.filter.documentIds } : {}),
      ...(req.filter?.metadataEquals ? { metadataEquals: req.filter.metadataEquals } : {}),
      access: await accessRead,
      withheld: new Map(),
    };
    const hits = await searchIndex.search(db, query);
    this.auditWithheld(principal, query);
    const mode = ranking === "hybrid" ? SearchMode.HYBRID : ranking === "vector" ? SearchMode.VECTOR : SearchMode.LEXICAL;
    return create(SearchResponseSchema, {
      mode,
      embeddingModel: ranking === "lexical" ? "" : corpus.searchModel,
      hits: hits.map((h) =>
        create(SearchHitSchema, {
          chunkId: `${h.documentId}:${h.version}:${h.ordinal}`,
          documentId: h.documentId,
          chunkOrdinal: h.ordinal,
          charStart: h.charStart,
          charEnd: h.charEnd,
          text: h.text,
          ...(h.vectorScore !== undefined ? { vectorScore: h.vectorScore } : {}),
          ...(h.lexicalScore !== undefined ? { lexicalScore: h.lexicalScore } : {}),
          fusedScore: h.fusedScore,
          filename: h.filename,
          documentMetadata: h.metadata,
        }),
      ),
    });
  }

  /**
   * The actions a search performs: Search; and Run too when the agent searches for a Run (it says
   * so in `nexus-action`). A Run search is denied by a forbid on either action and needs a permit
   * covering both, so the header can only narrow what a caller sees.
   */
  private searchActions(ctx: HandlerContext): PolicyAction[] {
    return ctx.requestHeader.get(RUN_ACTION_HEADER) === "Run" ? ["Search", "Run"] : ["Search"];
  }

  /** One audit record per call for the matching documents access withheld, by deciding rule (after the answer). */
  private auditWithheld(principal: TenantPrincipal, query: SearchQuery): void {
    const { db, logger } = this.ports;
    const context = query.access?.context;
    if (!context || (!context.anyRestricted && !context.defaultDeny && context.policies.length === 0)) return;
    void withheldByRule(db, query)
      .then((byRule) =>
        recordWithheld(
          db,
          principal.tenantId,
          {
            keyId: principal.keyId,
            userId: principal.userId ?? "",
            procedure: "/nexus.retrieval.v1.RetrievalService/Search",
            corpusId: query.corpusId,
          },
          byRule,
        ),
      )
      .catch((err: unknown) => logger.warn({ err }, "could not record the documents a search withheld"));
  }

  async savePolicy(req: SavePolicyRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const { rules } = await readLabelRules(this.ports.db, principal.tenantId);
    const errors = validatePolicy(req.policyId, req.text, rules);
    if (errors.length > 0) {
      throw domainError("INVALID_ARGUMENT", `the policy is not valid against the tenant's Cedar schema: ${errors.join("; ")}`, {
        field: "text",
        errors: errors.join("\n"),
      });
    }
    const state = await this.policyCommand(principal, req.policyId, {
      type: "SavePolicy",
      text: req.text,
      description: req.description,
      enabled: req.enabled,
      at: this.ports.clock(),
    });
    return create(SavePolicyResponseSchema, { policy: policyMessage(state!) });
  }

  async setPolicyEnabled(req: SetPolicyEnabledRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const state = await this.policyCommand(principal, req.policyId, {
      type: "SetPolicyEnabled",
      enabled: req.enabled,
      at: this.ports.clock(),
    });
    return create(SetPolicyEnabledResponseSchema, { policy: policyMessage(state!) });
  }

  async deletePolicy(req: DeletePolicyRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const state = await this.policyCommand(principal, req.policyId, { type: "DeletePolicy", at: this.ports.clock() });
    return create(DeletePolicyResponseSchema, { policy: policyMessage(state!) });
  }

  /** Runs a policy command; this process's access cache drops the tenant's entries after commit (the event drops the others'). */
  private async policyCommand(principal: TenantPrincipal, policyId: string, command: PolicyCommand) {
    const { state } = await executeCommand(this.ports.db, policyAggregate(), { tenantId: principal.tenantId, policyId }, command, {
      metadata: { tenantId: principal.tenantId, actor: principal.keyId },
    });
    accessCache.invalidate(principal.tenantId);
    return state;
  }

  async listPolicies(_req: ListPoliciesRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const [policies, { rules }] = await Promise.all([
      listPolicies(this.ports.db, principal.tenantId),
      readLabelRules(this.ports.db, principal.tenantId),
    ]);
    return create(ListPoliciesResponseSchema, {
      policies: policies.map(policyMessage),
      labelRules: rules.map((r) => ({ key: r.key, allowedValues: [...r.allowedValues] })),
      schema: cedarSchema(rules),
    });
  }

  async setLabelRules(req: SetLabelRulesRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const rules: LabelRule[] = [];
    for (const [i, r] of req.rules.entries()) {
      if (rules.some((x) => x.key === r.key)) {
        throw domainError("INVALID_ARGUMENT", `label ${r.key} is named twice`, { field: `rules[${i}].key` });
      }
      rules.push({ key: r.key, allowedValues: [...new Set(r.allowedValues)] });
    }
    const invalid = schemaErrors(rules);
    if (invalid.length > 0)
      throw domainError("INVALID_ARGUMENT", `these label rules give no valid Cedar schema: ${invalid.join("; ")}`, { field: "rules" });
    // Enabled or saved policies must stay valid: a label they read cannot be dropped.
    for (const policy of await listPolicies(this.ports.db, principal.tenantId)) {
      const errors = validatePolicy(policy.policyId, policy.text, rules);
      if (errors.length > 0) {
        throw domainError(
          "FAILED_PRECONDITION",
          `policy ${policy.policyId} would no longer be valid with these label rules: ${errors.join("; ")}`,
          { policy_id: policy.policyId },
        );
      }
    }
    await saveLabelRules(this.ports.db, principal.tenantId, rules, principal.keyId);
    return create(SetLabelRulesResponseSchema, {
      rules: rules.map((r) => ({ key: r.key, allowedValues: [...r.allowedValues] })),
      schema: cedarSchema(rules),
    });
  }

  async simulatePolicy(req: SimulatePolicyRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const p = req.principal!;
    if (!ROLES.includes(p.role)) {
      throw domainError("INVALID_ARGUMENT", "principal.role must be owner, admin, editor or viewer", { field: "principal.role" });
    }
    if (!p.userId && !p.keyId) {
      throw domainError("INVALID_ARGUMENT", "a simulated principal needs a user_id or a key_id", { field: "principal" });
    }
    const role = p.role as TenantRole;
    const reader = { userId: p.userId, keyId: p.keyId, role, groups: [...p.groups], roles: rolesAtOrBelow(role) };
    const stored = await listPolicies(this.ports.db, principal.tenantId);
    const extra = req.includePolicyIds.map((id, i) => {
      const policy = stored.find((x) => x.policyId === id);
      if (!policy) throw domainError("NOT_FOUND", `policy ${id} not found`, { field: `include_policy_ids[${i}]`, policy_id: id });
      return policy;
    });
    const documentId = req.resource.case === "documentId" ? req.resource.value : "";
    if (documentId) await this.requireDocument({ tenantId: principal.tenantId, documentId });
    const described = req.resource.case === "document" ? req.resource.value : undefined;
    const decision = await decideDocument(
      this.ports.db,
      { tenantId: principal.tenantId, documentId },
      reader,
      // Run is decided as Run's retrieval is: for Search and Run both.
      req.action === "Run" ? ["Search", "Run"] : [(req.action || "Read") as PolicyAction],
      {
        extra: extra.filter((x) => !x.enabled),
        ...(described
          ? {
              resource: {
                documentId: "",
                labels: { ...described.labels },
                corpusId: described.corpusId,
                ownerUserId: described.ownerUserId,
              },
            }
          : {}),
      },
    );
    return create(SimulatePolicyResponseSchema, {
      allowed: decision.allowed,
      rule: decision.rule,
      decidingPolicyIds: decision.policyIds,
      errors: decision.errors,
    });
  }

  async setDocumentAccess(req: SetDocumentAccessRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const key = { tenantId: principal.tenantId, documentId: req.documentId };
    await this.requireDocument(key);
    const grants: DocumentGrant[] = req.grants.map((g, i) => {
      const kind = GRANTEE_KINDS[g.kind];
      if (kind === undefined) throw domainError("INVALID_ARGUMENT", "a grant needs a kind", { field: `grants[${i}].kind` });
      if (kind !== "tenant" && !g.grantee)
        throw domainError("INVALID_ARGUMENT", "a user, group or role grant needs a grantee", { field: `grants[${i}].grantee` });
      if (kind === "role" && !ROLES.includes(g.grantee)) {
        throw domainError("INVALID_ARGUMENT", "a role grant names owner, admin, editor or viewer", { field: `grants[${i}].grantee` });
      }
      return { kind, grantee: g.grantee, expiresAt: g.expiresAt ? timestampDate(g.expiresAt) : undefined };
    });
    const { state } = await executeCommand(
      this.ports.db,
      documentAccessAggregate(),
      key,
      { type: "SetDocumentAccess", restricted: req.restricted, grants },
      { metadata: { tenantId: principal.tenantId, actor: principal.keyId } },
    );
    accessCache.invalidate(principal.tenantId);
    return create(SetDocumentAccessResponseSchema, {
      access: accessToMessage(state ?? { ...key, restricted: false, grants: [], ownerUserId: "" }),
    });
  }

  async getDocumentAccess(req: GetDocumentAccessRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    const key = { tenantId: principal.tenantId, documentId: req.documentId };
    await this.requireDocument(key);
    const { access } = await readDocumentAccess(this.ports.db, key);
    return create(GetDocumentAccessResponseSchema, {
      access: accessToMessage(access ?? { ...key, restricted: false, grants: [], ownerUserId: "" }),
    });
  }

  async setDocumentAccessSettings(req: SetDocumentAccessSettingsRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx);
    if (principal.role !== "owner") {
      throw authorizationRefusal("RBAC_FORBIDDEN", "only tenant owners decide whether admins bypass document access", {
        required_role: "owner",
      });
    }
    const settings = await saveAccessSettings(this.ports.db, principal.tenantId, req.adminsBypass, req.defaultDeny, principal.keyId);
    return create(SetDocumentAccessSettingsResponseSchema, settings);
  }

  /** NOT_FOUND unless the tenant has the document (another tenant's is not found either). */
  private async requireDocument(key: { tenantId: string; documentId: string }): Promise<void> {
    const { rows } = await this.ports.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM ingestion.documents WHERE tenant_id = $1 AND document_id = $2",
      [key.tenantId, key.documentId],
    );
    if ((rows[0]?.n ?? 0) === 0) throw domainError("NOT_FOUND", `document ${key.documentId} not found`, { document_id: key.documentId });
  }
}

const ROLES = ["owner", "admin", "editor", "viewer"];
const GRANTEE_KINDS: Partial<Record<GranteeKind, DocumentGrant["kind"]>> = {
  [GranteeKind.USER]: "user",
  [GranteeKind.GROUP]: "group",
  [GranteeKind.ROLE]: "role",
  [GranteeKind.TENANT]: "tenant",
};
const KIND_TO_PROTO: Record<DocumentGrant["kind"], GranteeKind> = {
  user: GranteeKind.USER,
  group: GranteeKind.GROUP,
  role: GranteeKind.ROLE,
  tenant: GranteeKind.TENANT,
};

/** The header the agent sets on the searches of a Run (policies then decide the Run action too). */
export const RUN_ACTION_HEADER = "nexus-action";

function policyMessage(p: StoredPolicy) {
  return {
    policyId: p.policyId,
    version: p.version,
    text: p.text,
    description: p.description,
    enabled: p.enabled,
    updatedAt: timestampFromDate(p.updatedAt),
  };
}

function accessToMessage(a: DocumentAccess) {
  return {
    documentId: a.documentId,
    restricted: a.restricted,
    ownerUserId: a.ownerUserId,
    grants: a.grants.map((g) => ({
      kind: KIND_TO_PROTO[g.kind],
      grantee: g.grantee,
      ...(g.expiresAt ? { expiresAt: timestampFromDate(g.expiresAt) } : {}),
    })),
  };
}
