import type { ActorKind, AuditOutcome, JsonObject } from "./audit-entry.js";
import type { JsonValue } from "./redaction.js";

/**
 * The audit taxonomy: which domain events become audit entries, under which type (the
 * names earlier Nexus deployments used: auth.*, rbac.forbidden, documents.*, corpora.*, run.invoked, quota.*,
 * billing.usage_recorded), with what action, resource, outcome and details. Events not listed
 * here are not audited. Details are taken from the event's canonical protobuf JSON and are
 * redacted afterwards by the caller.
 */

/** What a domain event looks like to the taxonomy. */
export interface AuditSourceEvent {
  eventId: string;
  /** Full protobuf name, e.g. "nexus.events.v1.ApiKeyRevoked". */
  type: string;
  /** Canonical protobuf JSON of the payload. */
  payload: unknown;
  metadata: {
    tenantId?: string | undefined;
    actor?: string | undefined;
    requestId?: string | undefined;
    correlationId?: string | undefined;
  };
  occurredAt: Date;
}

/** Who the taxonomy says acted, before the key is looked up. */
export interface ActorHint {
  /** A key id, "system" or "" (unknown/anonymous). */
  keyId: string;
  /** Set when the event itself decides the kind (e.g. anonymous access failures). */
  kind?: ActorKind;
  /** Set when the event carries the role (rbac.forbidden). */
  role?: string;
}

/** An audit entry as the taxonomy describes it (the actor not yet resolved, details unredacted). */
export interface TaxonomyEntry {
  tenantId: string;
  eventType: string;
  actor: ActorHint;
  action: string;
  resource: { type: string; id: string };
  outcome: AuditOutcome;
  requestId: string;
  before?: JsonObject | undefined;
  after?: JsonObject | undefined;
  metadata?: JsonObject | undefined;
}

type Payload = Record<string, JsonValue | undefined>;

const str = (v: JsonValue | undefined): string => (typeof v === "string" ? v : v === undefined || v === null ? "" : String(v));
const obj = (v: JsonValue | undefined): JsonObject | undefined =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? (v as JsonObject) : undefined;

/** Drops undefined and empty-string values so entries carry only what the event said. */
function details(fields: Record<string, JsonValue | undefined>): JsonObject | undefined {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== "") out[k] = v;
  return Object.keys(out).length > 0 ? out : undefined;
}

/** "ROLE_ADMIN" → "admin", "PLAN_PRO" → "pro"; other values unchanged. */
function enumName(v: JsonValue | undefined, prefix: string): string {
  const s = str(v);
  return s.startsWith(prefix) ? s.slice(prefix.length).toLowerCase() : s.toLowerCase();
}

const AUTH = "nexus.auth.v1.AuthService";
const INGESTION = "nexus.ingestion.v1.IngestionService";
const RETRIEVAL = "nexus.retrieval.v1.RetrievalService";
const METERING = "nexus.metering.v1.MeteringService";
const MODULES = "nexus.modules.v1.ModulesService";
const INTEGRATION = "nexus.integration.v1.IntegrationService";

/** created → Create, key_rotated → RotateAppKey… : the RPC a management change came from. */
const INTEGRATION_VERBS: Record<string, string> = {
  created: "Create",
  updated: "Update",
  deleted: "Delete",
  rolled_back: "Rollback",
  disabled: "Disable",
  enabled: "Enable",
  key_rotated: "RotateAppKey",
  secret_rotated: "RotateMasterSecret",
};
const integrationAction = (change: string, noun: string) => {
  const verb = INTEGRATION_VERBS[change] ?? change;
  return `${INTEGRATION}/${verb.startsWith("Rotate") ? verb : `${verb}${noun}`}`;
};
const EDGE_VERBS: Record<string, string> = {
  registered: "RegisterEdge",
  revoked: "RevokeEdge",
  apps_assigned: "AssignEdgeApps",
  apps_unassigned: "UnassignEdgeApps",
};
const edgeAction = (change: string) => `nexus.integration.v1.EdgeService/${EDGE_VERBS[change] ?? change}`;
const IDENTITY = "nexus.identity.v1.IdentityService";
const GOVERNANCE = "nexus.governance.v1.GovernanceService";

interface Context {
  p: Payload;
  e: AuditSourceEvent;
  /** The event's own actor (metadata) as a hint. */
  actor: ActorHint;
}

type Mapper = (c: Context) => Omit<TaxonomyEntry, "tenantId" | "requestId"> & { requestId?: string };

const procedureAction = (p: Payload) => str(p.procedure).replace(/^\//, "");

const quotaDetails = (p: Payload) =>
  details({
    period: enumName(p.period, "PERIOD_"),
    period_start: p.periodStart,
    metric: enumName(p.metric, "QUOTA_METRIC_"),
    limit: p.limit ?? 0,
    used: p.used ?? 0,
    soft_cap_ratio: p.softCapRatio,
    request_id: p.requestId,
  });

/** A saga's end as an audit entry. */
const sagaEnd = (eventType: string, p: Payload, actor: ActorHint, outcome: AuditOutcome) => ({
  eventType,
  actor,
  action: "saga.end",
  resource: { type: "saga", id: str(p.sagaId) },
  outcome,
  metadata: details({ reason: p.reason }),
});

/** Event type (protobuf full name) → how it is audited. */
const TAXONOMY: Readonly<Record<string, Mapper>> = {
  // ---- auth
  "nexus.events.v1.TenantCreated": ({ p, actor }) => ({
    eventType: "tenant.created",
    actor,
    action: `${AUTH}/CreateTenant`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    after: details({ slug: p.slug, display_name: p.displayName, plan: enumName(p.plan, "PLAN_") }),
  }),
  "nexus.events.v1.TenantSuspended": ({ p, actor }) => ({
    eventType: "tenant.suspended",
    actor,
    action: `${AUTH}/SuspendTenant`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    before: { status: "active" },
    after: { status: "suspended" },
    metadata: details({ reason: p.reason }),
  }),
  "nexus.events.v1.TenantResumed": ({ p, actor }) => ({
    eventType: "tenant.resumed",
    actor,
    action: `${AUTH}/ResumeTenant`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    before: { status: "suspended" },
    after: { status: "active" },
  }),
  "nexus.events.v1.PlanChanged": ({ p, actor }) => ({
    eventType: "plan.changed",
    actor,
    action: `${AUTH}/SetPlan`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    before: { plan: enumName(p.previousPlan, "PLAN_") },
    after: { plan: enumName(p.plan, "PLAN_") },
  }),
  "nexus.events.v1.EntitlementOverridesChanged": ({ p, actor }) => ({
    eventType: "tenant.entitlements.changed",
    actor,
    action: `${AUTH}/SetEntitlementOverrides`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    before: obj(p.previousOverrides) ?? {},
    after: obj(p.overrides) ?? {},
  }),
  "nexus.events.v1.TenantDisplayNameChanged": ({ p, actor }) => ({
    eventType: "tenant.display_name.changed",
    actor,
    action: `${AUTH}/UpdateTenant`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    before: { display_name: str(p.previousDisplayName) },
    after: { display_name: str(p.displayName) },
  }),
  "nexus.events.v1.ApiKeyIssued": ({ p, actor }) => ({
    eventType: "auth.api_key.created",
    actor,
    action: `${AUTH}/${p.predecessorKeyId ? "RotateApiKey" : "CreateApiKey"}`,
    resource: { type: "api_key", id: str(p.keyId) },
    outcome: "success",
    after: details({
      name: p.name,
      kind: enumName(p.kind, "PRINCIPAL_KIND_"),
      role: p.role === undefined ? undefined : enumName(p.role, "ROLE_"),
      expires_at: p.expiresAt,
      predecessor_key_id: p.predecessorKeyId,
    }),
  }),
  "nexus.events.v1.ApiKeyRotated": ({ p, actor }) => ({
    eventType: "auth.api_key.rotated",
    actor,
    action: `${AUTH}/RotateApiKey`,
    resource: { type: "api_key", id: str(p.keyId) },
    outcome: "success",
    metadata: details({ successor_key_id: p.successorKeyId, grace_ends_at: p.graceEndsAt }),
  }),
  "nexus.events.v1.ApiKeyRevoked": ({ p, actor }) => ({
    eventType: "auth.api_key.revoked",
    actor,
    action: str(p.reason) === "rotated" ? `${AUTH}/RotateApiKey` : `${AUTH}/RevokeApiKey`,
    resource: { type: "api_key", id: str(p.keyId) },
    outcome: "success",
    before: { status: "active" },
    after: { status: "revoked" },
    metadata: details({ reason: p.reason, revoked_at: p.revokedAt }),
  }),
  "nexus.events.v1.ApiKeyRoleChanged": ({ p, actor }) => ({
    eventType: "auth.api_key.role_changed",
    actor,
    action: `${AUTH}/SetApiKeyRole`,
    resource: { type: "api_key", id: str(p.keyId) },
    outcome: "success",
    before: { role: enumName(p.previousRole, "ROLE_") },
    after: { role: enumName(p.role, "ROLE_") },
  }),
  "nexus.events.v1.ApiKeyReactivated": ({ p, actor }) => ({
    eventType: "auth.api_key.reactivated",
    actor,
    action: `${AUTH}/ReactivateApiKey`,
    resource: { type: "api_key", id: str(p.keyId) },
    outcome: "success",
    before: { status: "inactive" },
    after: { status: "active" },
  }),
  "nexus.events.v1.AccessDenied": ({ p }) => ({
    eventType: "auth.access.failure",
    // The caller could not be authenticated: anonymous, with the key id it claimed (if any).
    actor: { keyId: str(p.keyId), kind: "anonymous" },
    action: procedureAction(p),
    resource: p.keyId ? { type: "api_key", id: str(p.keyId) } : { type: "", id: "" },
    outcome: "failure",
    metadata: details({ reason: p.reason, procedure: p.procedure, peer_address: p.peerAddress }),
  }),
  "nexus.events.v1.RbacForbidden": ({ p }) => ({
    eventType: "rbac.forbidden",
    actor: { keyId: str(p.keyId), role: p.role === undefined ? "" : enumName(p.role, "ROLE_") },
    action: procedureAction(p),
    resource: { type: "", id: "" },
    outcome: "failure",
    metadata: details({
      reason: p.reason,
      procedure: p.procedure,
      required_role: p.requiredRole === undefined ? undefined : enumName(p.requiredRole, "ROLE_"),
      feature_key: p.featureKey,
    }),
  }),

  // ---- data governance (served by auth): legal holds and retention policies
  "nexus.events.v1.LegalHoldPlaced": ({ p, actor }) => ({
    eventType: "governance.legal_hold.placed",
    actor,
    action: `${GOVERNANCE}/PlaceLegalHold`,
    resource: { type: "legal_hold", id: str(p.holdId) },
    outcome: "success",
    after: details({ scope: p.scope, subject_id: p.subjectId, reason: p.reason }),
  }),
  "nexus.events.v1.LegalHoldReleased": ({ p, actor }) => ({
    eventType: "governance.legal_hold.released",
    actor,
    action: `${GOVERNANCE}/ReleaseLegalHold`,
    resource: { type: "legal_hold", id: str(p.holdId) },
    outcome: "success",
    before: details({ scope: p.scope, subject_id: p.subjectId }),
  }),
  "nexus.events.v1.RetentionPolicyChanged": ({ p, actor }) => ({
    eventType: p.maxAgeDays ? "governance.retention_policy.set" : "governance.retention_policy.cleared",
    actor,
    action: `${GOVERNANCE}/${p.maxAgeDays ? "Set" : "Clear"}RetentionPolicy`,
    resource: { type: "retention_policy", id: str(p.category) },
    outcome: "success",
    after: p.maxAgeDays ? details({ max_age_days: p.maxAgeDays, action: p.action }) : undefined,
  }),

  "nexus.events.v1.DataSubjectRequestCreated": ({ p, actor }) => ({
    eventType: "governance.subject_request.created",
    actor,
    action: `${GOVERNANCE}/CreateDataSubjectRequest`,
    resource: { type: "subject_request", id: str(p.requestId) },
    outcome: "success",
    after: details({ kind: p.kind, scope: p.scope, subject_id: p.subjectId, approval_required: p.approvalRequired === true }),
  }),
  "nexus.events.v1.DataSubjectRequestApproved": ({ p, actor }) => ({
    eventType: "governance.subject_request.approved",
    actor,
    action: `${GOVERNANCE}/ApproveDataSubjectRequest`,
    resource: { type: "subject_request", id: str(p.requestId) },
    outcome: "success",
    metadata: details({ requested_by: p.requestedBy }),
  }),
  "nexus.events.v1.DataSubjectRequestCompleted": ({ p, actor }) => ({
    eventType: "governance.subject_request.completed",
    actor,
    action: `${GOVERNANCE}/CreateDataSubjectRequest`,
    resource: { type: "subject_request", id: str(p.requestId) },
    outcome: "success",
    after: details({ kind: p.kind, scope: p.scope, subject_id: p.subjectId, items: p.items ?? 0, kept: p.kept ?? 0 }),
  }),
  "nexus.events.v1.DataSubjectRequestFailed": ({ p, actor }) => ({
    eventType: "governance.subject_request.failed",
    actor,
    action: `${GOVERNANCE}/CreateDataSubjectRequest`,
    resource: { type: "subject_request", id: str(p.requestId) },
    outcome: "failure",
    after: details({ kind: p.kind, part: p.part, error: p.error, attempts: p.attempts ?? 0 }),
  }),
  "nexus.events.v1.DataSubjectRequestRetried": ({ p, actor }) => ({
    eventType: "governance.subject_request.retried",
    actor,
    action: `${GOVERNANCE}/RetryDataSubjectRequest`,
    resource: { type: "subject_request", id: str(p.requestId) },
    outcome: "success",
  }),
  "nexus.events.v1.GovernanceSettingsChanged": ({ p, actor }) => ({
    eventType: "governance.settings.changed",
    actor,
    action: `${GOVERNANCE}/SetGovernanceSettings`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    after: { erase_requires_approval: p.eraseRequiresApproval === true },
  }),

  // ---- people and sign-in (identity, served by auth)
  "nexus.events.v1.UserCreated": ({ p, actor }) => ({
    eventType: "identity.user.created",
    actor,
    action: `${IDENTITY}/AddMember`,
    resource: { type: "user", id: str(p.userId) },
    outcome: "success",
    after: details({ email: p.email, display_name: p.displayName }),
  }),
  "nexus.events.v1.MembershipGranted": ({ p, actor }) => ({
    eventType: "identity.member.added",
    actor,
    action: `${IDENTITY}/AddMember`,
    resource: { type: "user", id: str(p.userId) },
    outcome: "success",
    after: details({ role: p.role === undefined ? undefined : enumName(p.role, "ROLE_") }),
  }),
  "nexus.events.v1.MembershipRoleChanged": ({ p, actor }) => ({
    eventType: "identity.member.role_changed",
    actor,
    action: `${IDENTITY}/SetMemberRole`,
    resource: { type: "user", id: str(p.userId) },
    outcome: "success",
    before: { role: enumName(p.previousRole, "ROLE_") },
    after: { role: enumName(p.role, "ROLE_") },
  }),
  "nexus.events.v1.MembershipRevoked": ({ p, actor }) => ({
    eventType: "identity.member.removed",
    actor,
    action: `${IDENTITY}/RemoveMember`,
    resource: { type: "user", id: str(p.userId) },
    outcome: "success",
  }),
  "nexus.events.v1.PlatformOperatorChanged": ({ p, actor }) => ({
    eventType: "identity.platform_operator.changed",
    actor,
    action: `${IDENTITY}/SetPlatformOperator`,
    resource: { type: "user", id: str(p.userId) },
    outcome: "success",
    after: { platform_operator: p.platformOperator === true },
  }),
  "nexus.events.v1.IdentityProviderConfigured": ({ p, actor }) => ({
    eventType: "identity.provider.configured",
    actor,
    action: `${IDENTITY}/SetIdentityProvider`,
    resource: { type: "identity_provider", id: str(p.tenantId) },
    outcome: "success",
    after: details({
      issuer: p.issuer,
      audience: p.audience,
      client_id: p.clientId,
      enabled: p.enabled === true,
      client_secret_set: p.clientSecretSet === true,
    }),
  }),
  "nexus.events.v1.SessionStarted": ({ p, actor }) => ({
    eventType: "auth.sso.sign_in",
    actor,
    action: "auth.oidc.callback",
    resource: { type: "session", id: str(p.sessionId) },
    outcome: "success",
    metadata: details({ user_id: p.userId, expires_at: p.expiresAt }),
  }),
  "nexus.events.v1.SessionEnded": ({ p, actor }) => ({
    eventType: "auth.sso.sign_out",
    actor,
    action: "auth.oidc.logout",
    resource: { type: "session", id: str(p.sessionId) },
    outcome: "success",
    metadata: details({ user_id: p.userId, reason: p.reason }),
  }),
  "nexus.events.v1.ScimTokenRotated": ({ p, actor }) => ({
    eventType: "identity.scim_token.rotated",
    actor,
    action: `${IDENTITY}/RotateScimToken`,
    resource: { type: "scim_token", id: str(p.tenantId) },
    outcome: "success",
    after: details({ token_id: p.tokenId, previous_token_id: p.previousTokenId }),
  }),
  "nexus.events.v1.ScimTokenRevoked": ({ p, actor }) => ({
    eventType: "identity.scim_token.revoked",
    actor,
    action: `${IDENTITY}/RevokeScimToken`,
    resource: { type: "scim_token", id: str(p.tenantId) },
    outcome: "success",
    before: details({ token_id: p.tokenId }),
  }),
  "nexus.events.v1.DirectoryGroupsChanged": ({ p, actor }) => ({
    eventType: "identity.directory.groups_changed",
    actor,
    action: "scim.groups",
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    after: details({ user_ids: p.userIds }),
  }),
  "nexus.events.v1.DocumentAccessDenied": ({ p }) => ({
    eventType: "documents.access.denied",
    actor: { keyId: str(p.keyId) },
    action: procedureAction(p),
    resource: { type: "document", id: str(p.documentId) },
    outcome: "failure",
    metadata: details({ rule: p.rule, user_id: p.userId, procedure: p.procedure }),
  }),

  "nexus.events.v1.DocumentsWithheld": ({ p }) => ({
    eventType: "documents.access.withheld",
    actor: { keyId: str(p.keyId) },
    action: procedureAction(p),
    resource: { type: "corpus", id: str(p.corpusId) },
    outcome: "failure",
    metadata: details({ withheld_documents: p.withheldDocuments ?? 0, rules: p.rules, user_id: p.userId, procedure: p.procedure }),
  }),
  "nexus.events.v1.DocumentAccessChanged": ({ p, actor }) => ({
    eventType: "documents.access.changed",
    actor,
    action: `${RETRIEVAL}/SetDocumentAccess`,
    resource: { type: "document", id: str(p.documentId) },
    outcome: "success",
    after: details({ restricted: p.restricted ?? false, grants: p.grants, owner_user_id: p.ownerUserId }),
  }),
  "nexus.events.v1.PolicySaved": ({ p, actor }) => ({
    eventType: "policies.saved",
    actor,
    action: `${RETRIEVAL}/SavePolicy`,
    resource: { type: "policy", id: str(p.policyId) },
    outcome: "success",
    after: details({ version: p.version, text: p.text, enabled: p.enabled ?? false, description: p.description }),
  }),
  "nexus.events.v1.PolicyEnabledChanged": ({ p, actor }) => ({
    eventType: p.enabled === true ? "policies.enabled" : "policies.disabled",
    actor,
    action: `${RETRIEVAL}/SetPolicyEnabled`,
    resource: { type: "policy", id: str(p.policyId) },
    outcome: "success",
    after: details({ version: p.version, enabled: p.enabled ?? false }),
  }),
  "nexus.events.v1.PolicyDeleted": ({ p, actor }) => ({
    eventType: "policies.deleted",
    actor,
    action: `${RETRIEVAL}/DeletePolicy`,
    resource: { type: "policy", id: str(p.policyId) },
    outcome: "success",
    before: details({ version: p.version, text: p.text }),
  }),
  "nexus.events.v1.DocumentAccessSettingsChanged": ({ p, actor }) => ({
    eventType: "documents.access.settings",
    actor,
    action: `${RETRIEVAL}/SetDocumentAccessSettings`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    after: details({ admins_bypass: p.adminsBypass ?? false, default_deny: p.defaultDeny ?? false }),
  }),
  "nexus.events.v1.LabelRulesChanged": ({ p, actor }) => ({
    eventType: "labels.rules.changed",
    actor,
    action: `${RETRIEVAL}/SetLabelRules`,
    resource: { type: "tenant", id: str(p.tenantId) },
    outcome: "success",
    after: details({ rules: p.rules }),
  }),

  // ---- ingestion
  "nexus.events.v1.DocumentQueued": ({ p, actor }) => {
    const reindex = str(p.reason) === "QUEUE_REASON_REINDEX";
    return {
      eventType: reindex ? "documents.reindex.enqueued" : "documents.ingest.enqueued",
      actor,
      action: reindex ? `${INGESTION}/ReindexDocument` : "ingestion.ingest",
      resource: { type: "document", id: str(p.documentId) },
      outcome: "success",
      after: details({
        version: p.version,
        filename: p.filename,
        media_type: p.mediaType,
        size_bytes: p.sizeBytes,
        content_sha256: p.contentSha256,
      }),
      metadata: details({ corpus_id: p.corpusId, reason: enumName(p.reason, "QUEUE_REASON_") }),
    };
  },
  "nexus.events.v1.DocumentIngested": ({ p, actor }) => ({
    eventType: "documents.ingested",
    actor,
    action: "ingestion.worker",
    resource: { type: "document", id: str(p.documentId) },
    outcome: "success",
    metadata: details({ corpus_id: p.corpusId, version: p.version, chunk_count: p.chunkCount, attempts: p.attempts, duration: p.duration }),
  }),
  "nexus.events.v1.DocumentFailed": ({ p, actor }) => ({
    eventType: "documents.failed",
    actor,
    action: "ingestion.worker",
    resource: { type: "document", id: str(p.documentId) },
    outcome: "failure",
    metadata: details({
      corpus_id: p.corpusId,
      version: p.version,
      failure_reason: p.failureReason,
      failure_message: p.failureMessage,
      attempts: p.attempts,
      dead_lettered: p.deadLettered,
    }),
  }),
  "nexus.events.v1.DocumentDeleted": ({ p, actor }) => ({
    eventType: "documents.deleted",
    actor,
    action: `${INGESTION}/DeleteDocument`,
    resource: { type: "document", id: str(p.documentId) },
    outcome: "success",
    before: details({ version: p.version }),
    metadata: details({ corpus_id: p.corpusId }),
  }),

  // ---- retrieval
  "nexus.events.v1.CorpusCreated": ({ p, actor }) => ({
    eventType: "corpora.created",
    actor,
    action: `${RETRIEVAL}/CreateCorpus`,
    resource: { type: "corpus", id: str(p.corpusId) },
    outcome: "success",
    after: details({
      display_name: p.displayName,
      provider: p.provider,
      embedding_model: p.embeddingModel,
      embedding_dimensions: p.embeddingDimensions,
    }),
  }),
  "nexus.events.v1.CorpusUpdated": ({ p, actor }) => ({
    eventType: "corpora.updated",
    actor,
    action: `${RETRIEVAL}/UpdateCorpus`,
    resource: { type: "corpus", id: str(p.corpusId) },
    outcome: "success",
    before: obj(p.before) ?? {},
    after: obj(p.after) ?? {},
    metadata: details({ changed_fields: p.changedFields, reindex_required: p.reindexRequired }),
  }),
  "nexus.events.v1.CorpusDeleted": ({ p, actor }) => ({
    eventType: "corpora.deleted",
    actor,
    action: `${RETRIEVAL}/DeleteCorpus`,
    resource: { type: "corpus", id: str(p.corpusId) },
    outcome: "success",
    metadata: details({ documents_deleted: p.documentsDeleted }),
  }),

  // ---- integration (management changes; secrets are never in these events)
  "nexus.events.v1.SenderAppChanged": ({ p, actor }) => ({
    eventType: `integration.sender_app.${str(p.change)}`,
    actor,
    action: integrationAction(str(p.change), "SenderApp"),
    resource: { type: "sender_app", id: str(p.appId) },
    outcome: "success",
    after: details({ name: p.name, key_version: p.keyVersion }),
  }),
  "nexus.events.v1.DestinationChanged": ({ p, actor }) => ({
    eventType: `integration.destination.${str(p.change)}`,
    actor,
    action: integrationAction(str(p.change), "Destination"),
    resource: { type: "destination", id: str(p.destinationId) },
    outcome: "success",
    after: details({ name: p.name, kind: p.kind }),
  }),
  "nexus.events.v1.WorkflowChanged": ({ p, actor }) => ({
    eventType: `integration.workflow.${str(p.change)}`,
    actor,
    action: integrationAction(str(p.change), "Workflow"),
    resource: { type: "workflow", id: str(p.workflowId) },
    outcome: "success",
    after: details({ name: p.name, version: p.version }),
  }),
  "nexus.events.v1.MqttSourceChanged": ({ p, actor }) => ({
    eventType: `integration.mqtt_source.${str(p.change)}`,
    actor,
    action: integrationAction(str(p.change), "MqttSource"),
    resource: { type: "mqtt_source", id: str(p.sourceId) },
    outcome: "success",
    after: details({ name: p.name }),
  }),
  "nexus.events.v1.EdgeAgentChanged": ({ p, actor }) => ({
    eventType: `integration.edge_agent.${str(p.change)}`,
    actor,
    action: edgeAction(str(p.change)),
    resource: { type: "edge_agent", id: str(p.edgeId) },
    outcome: "success",
    after: details({ name: p.name, app_ids: p.appIds, changed_app_ids: p.changedAppIds }),
  }),

  // ---- agent
  "nexus.events.v1.RunStarted": ({ p, actor }) => ({
    eventType: "run.invoked",
    actor,
    action: "nexus.agent.v1.AgentService/Run",
    resource: { type: "session", id: str(p.sessionId) },
    outcome: "success",
    // The run's own request id, not the one of the process that appended the event.
    requestId: str(p.requestId),
    metadata: details({
      corpus_id: p.corpusId,
      plan: p.plan === undefined ? undefined : enumName(p.plan, "PLAN_"),
      provider: p.provider,
      model: p.model,
      reservation_id: p.reservationId,
    }),
  }),

  // ---- metering
  "nexus.events.v1.QuotaSoftCapReached": ({ p, actor }) => ({
    eventType: "quota.soft_cap_reached",
    actor,
    action: `${METERING}/CheckQuota`,
    resource: { type: "quota", id: str(p.tenantId) },
    outcome: "success",
    metadata: quotaDetails(p),
  }),
  "nexus.events.v1.QuotaHardCapBlocked": ({ p, actor }) => ({
    eventType: "quota.hard_cap_blocked",
    actor,
    action: `${METERING}/CheckQuota`,
    resource: { type: "quota", id: str(p.tenantId) },
    outcome: "failure",
    requestId: str(p.requestId),
    metadata: quotaDetails(p),
  }),
  "nexus.events.v1.QuotaOverage": ({ p, actor }) => ({
    eventType: "quota.overage_observed",
    actor,
    action: `${METERING}/CheckQuota`,
    resource: { type: "quota", id: str(p.tenantId) },
    outcome: "success",
    requestId: str(p.requestId),
    metadata: quotaDetails(p),
  }),
  "nexus.events.v1.QuotaUpdated": ({ p, actor }) => ({
    eventType: "quota.updated",
    actor,
    action: `${METERING}/SetQuota`,
    resource: { type: "quota", id: str(p.tenantId) },
    outcome: "success",
    before: obj(p.previousQuota) ?? {},
    after: obj(p.quota) ?? {},
  }),
  // ---- event store
  "nexus.events.v1.TemporalQueryPerformed": ({ p, actor }) => ({
    eventType: "eventstore.temporal_query",
    actor,
    action:
      str(p.query) === "GetTenantAt"
        ? "nexus.auth.v1.AuthService/GetTenantAt"
        : `nexus.eventstore.v1.EventStoreService/${str(p.query) || "ReadStreamHistory"}`,
    resource: { type: "stream", id: str(p.streamId) },
    outcome: "success",
    metadata: details({
      start_time: p.startTime,
      end_time: p.endTime,
      at_version: p.atVersion,
      duration_ms: p.durationMs,
      events_scanned: p.eventsScanned ?? "0",
      partial: p.partial ?? false,
    }),
  }),
  // ---- sagas (services/kernel/sagas): their start (who started an offboarding, and why) and end
  "nexus.sagas.v1.SagaStarted": ({ p, actor }) => ({
    eventType: "saga.started",
    actor,
    action:
      str(p.name) === "tenant-offboarding" && actor.keyId
        ? "nexus.eventstore.v1.EventStoreService/StartTenantOffboarding"
        : `saga.${str(p.name) || "unknown"}`,
    resource: { type: "saga", id: str(p.sagaId) },
    outcome: "success",
    metadata: details({ name: p.name, input: obj(p.input), deadline: p.deadline }),
  }),
  "nexus.sagas.v1.SagaCompleted": ({ p, actor }) => sagaEnd("saga.completed", p, actor, "success"),
  "nexus.sagas.v1.SagaCompensated": ({ p, actor }) => sagaEnd("saga.compensated", p, actor, "failure"),
  "nexus.sagas.v1.SagaFailed": ({ p, actor }) => sagaEnd("saga.failed", p, actor, "failure"),
  "nexus.events.v1.UsageRecorded": ({ p, actor }) => ({
    eventType: "billing.usage_recorded",
    actor,
    action: "metering.usage",
    resource: { type: "run", id: str(p.requestId) },
    outcome: "success",
    requestId: str(p.requestId),
    metadata: details({
      outcome: enumName(p.outcome, "RUN_OUTCOME_"),
      plan: p.plan === undefined ? undefined : enumName(p.plan, "PLAN_"),
      run_units: p.runUnits ?? 0,
      cpu_seconds: p.cpuSeconds,
      gpu_seconds: p.gpuSeconds,
      tool_calls: p.toolCalls,
      usage_date: p.usageDate,
    }),
  }),

  "nexus.events.v1.UsageRecordsPurged": ({ p, actor }) => ({
    eventType: "billing.usage_records_purged",
    actor,
    action: "metering.usage_purge",
    resource: { type: "usage_records", id: str(p.tenantId) },
    outcome: "success",
    metadata: details({
      reason: p.reason,
      recorded_before: p.recordedBefore,
      all_records: p.allRecords ?? false,
      removed: p.removed ?? "0",
    }),
  }),

  // ---- modules: every step of a version's approval, activations (rollbacks), credentials (names only)
  "nexus.events.v1.ModuleVersionSubmitted": ({ p, actor }) => ({
    eventType: "modules.version.submitted",
    actor,
    action: `${MODULES}/SubmitModuleVersion`,
    resource: { type: "module", id: `${str(p.name)}@${str(p.version)}` },
    outcome: str(p.status) === "TESTS_FAILED" ? "failure" : "success",
    metadata: details({
      status: p.status,
      code_sha256: p.codeSha256,
      tests_passed: p.testsPassed ?? 0,
      tests_failed: p.testsFailed ?? 0,
      credentials: p.credentials,
      egress_hosts: p.egressHosts,
    }),
  }),
  "nexus.events.v1.ModuleVersionReviewed": ({ p, actor }) => ({
    eventType: p.approved === true ? "modules.version.approved" : "modules.version.rejected",
    actor,
    action: `${MODULES}/ReviewModuleVersion`,
    resource: { type: "module", id: `${str(p.name)}@${str(p.version)}` },
    outcome: "success",
    metadata: details({ feedback: p.feedback }),
  }),
  "nexus.events.v1.ModuleVersionActivated": ({ p, actor }) => ({
    eventType: "modules.version.activated",
    actor,
    action: `${MODULES}/ActivateModuleVersion`,
    resource: { type: "module", id: str(p.name) },
    outcome: "success",
    before: details({ version: p.previousVersion }) ?? {},
    after: details({ version: p.version }) ?? {},
  }),
  "nexus.events.v1.ModuleCredentialSet": ({ p, actor }) => ({
    eventType: "modules.credential.set",
    actor,
    action: `${MODULES}/SetCredential`,
    resource: { type: "credential", id: str(p.name) },
    outcome: "success",
  }),
  "nexus.events.v1.ListingPublished": ({ p, actor }) => ({
    eventType: "modules.listing.published",
    actor,
    action: `${MODULES}/PublishModule`,
    resource: { type: "listing", id: str(p.listingId) },
    outcome: "success",
    metadata: details({ module: p.name, version: p.version, license: p.license, price_micros_per_call: p.priceMicrosPerCall }),
  }),
  "nexus.events.v1.ListingReviewed": ({ p, actor }) => ({
    eventType: p.approved === true ? "modules.listing.approved" : "modules.listing.rejected",
    actor,
    action: `${MODULES}/ReviewListing`,
    resource: { type: "listing", id: str(p.listingId) },
    outcome: "success",
    metadata: details({ feedback: p.feedback }),
  }),
  "nexus.events.v1.ListingInstalled": ({ p, actor }) => ({
    eventType: "modules.listing.installed",
    actor,
    action: `${MODULES}/InstallListing`,
    resource: { type: "listing", id: str(p.listingId) },
    outcome: "success",
  }),
  "nexus.events.v1.ModuleCredentialDeleted": ({ p, actor }) => ({
    eventType: "modules.credential.deleted",
    actor,
    action: `${MODULES}/DeleteCredential`,
    resource: { type: "credential", id: str(p.name) },
    outcome: "success",
  }),
};

/** Event types the audit trail records. */
export const AUDITED_EVENT_TYPES: readonly string[] = Object.keys(TAXONOMY);

/**
 * The audit entry a domain event becomes, or undefined when the taxonomy does not audit it.
 * The tenant is the event's (metadata, else payload); "" means installation-wide.
 */
export function taxonomyEntry(e: AuditSourceEvent): TaxonomyEntry | undefined {
  const mapper = TAXONOMY[e.type];
  if (!mapper) return undefined;
  const p = (e.payload !== null && typeof e.payload === "object" ? e.payload : {}) as Payload;
  const metaActor = e.metadata.actor ?? "";
  const actor: ActorHint =
    metaActor === "system"
      ? { keyId: "", kind: "system" }
      : metaActor === "anonymous" || metaActor === ""
        ? { keyId: "", kind: metaActor ? "anonymous" : "system" }
        : { keyId: metaActor };
  const mapped = mapper({ p, e, actor });
  return {
    ...mapped,
    tenantId: e.metadata.tenantId || str(p.tenantId),
    requestId: mapped.requestId || e.metadata.requestId || "",
  };
}
