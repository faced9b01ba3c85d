import type { TenantRole } from "../context.js";

/**
 * THE permission table: every RPC of every Nexus service, in one place. The authentication
 * gate and the authorization interceptor enforce it for every process; handlers only scope
 * their queries by the principal's tenant. An RPC that is not listed here is refused
 * (PERMISSION_DENIED reason RBAC_FORBIDDEN) for every principal, platform included — a new
 * RPC is closed until someone decides who may call it. A test compares this table with the
 * generated service descriptors in both directions. docs/security.md renders it for people.
 *
 * Permission classes:
 * - `public`: no API key needed (AuthService.Authenticate: the gates of other processes call
 *   it with the key under test in the body; EdgeService's agent calls, whose edge token the
 *   integration service checks itself);
 * - `authenticated`: any valid key, platform or tenant (WhoAmI);
 * - `read` / `write` / `admin`: tenant members with at least viewer / editor / admin;
 *   `platform: true` also admits platform operators (who must then name the tenant);
 * - `platform`: platform operators only — tenant creation and the tenant record (display
 *   name, plan, status), overrides, quotas and anything installation-wide. No tenant role, not
 *   even owner, passes.
 *
 * The `owner` tier is enforced inside the auth service (granting or managing owner keys, see
 * services/auth/domain/key-policy.ts); no RPC is owner-only as a whole.
 */

/** What a permission class requires. */
export type PermissionClass = "public" | "authenticated" | "read" | "write" | "admin" | "platform";

/** One RPC's rule. */
export interface Permission {
  class: PermissionClass;
  /** For read/write/admin: platform operators may call it too. Default false. */
  platform?: boolean;
  /** A feature the caller's tenant must have (PERMISSION_DENIED FEATURE_NOT_ENABLED otherwise). */
  feature?: string;
}

/** The weakest tenant role each tenant class admits. */
export const CLASS_MIN_ROLE: Readonly<Record<"read" | "write" | "admin", TenantRole>> = {
  read: "viewer",
  write: "editor",
  admin: "admin",
};

const publicRpc: Permission = { class: "public" };
const anyone: Permission = { class: "authenticated" };
const platformOnly: Permission = { class: "platform" };
const read: Permission = { class: "read" };
const write: Permission = { class: "write" };
const admin: Permission = { class: "admin" };
const readOrPlatform: Permission = { class: "read", platform: true };
const adminOrPlatform: Permission = { class: "admin", platform: true };
const writeOrPlatform: Permission = { class: "write", platform: true };
const auditAccess: Permission = { class: "admin", platform: true, feature: "feature.audit_access" };
const ssoAdmin: Permission = { class: "admin", platform: true, feature: "feature.identity.sso" };
const scimAdmin: Permission = { class: "admin", platform: true, feature: "feature.identity.scim" };

/**
 * Procedure (`/<package>.<Service>/<Method>`) → rule. Tenant content (documents, corpora,
 * sessions, search, runs) is for tenant members only: platform operators run the
 * installation, they do not read customers' data.
 */
export const PERMISSIONS: Readonly<Record<string, Permission>> = Object.freeze({
  // ---- nexus.governance.v1.GovernanceService (served by auth) ----
  // Tenant admins govern their own data (holds, retention); platform operators may too, for
  // a named tenant (a hold ordered by counsel outside the tenant).
  "/nexus.governance.v1.GovernanceService/PlaceLegalHold": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/ListLegalHolds": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/ReleaseLegalHold": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/SetRetentionPolicy": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/ClearRetentionPolicy": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/ListRetentionPolicies": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/ListRetentionReports": adminOrPlatform,
  // Data-subject requests hold and destroy personal data: tenant admins only (platform
  // operators do not read customers' data).
  "/nexus.governance.v1.GovernanceService/CreateDataSubjectRequest": admin,
  "/nexus.governance.v1.GovernanceService/ApproveDataSubjectRequest": admin,
  "/nexus.governance.v1.GovernanceService/RetryDataSubjectRequest": admin,
  "/nexus.governance.v1.GovernanceService/GetDataSubjectRequest": admin,
  "/nexus.governance.v1.GovernanceService/ListDataSubjectRequests": admin,
  "/nexus.governance.v1.GovernanceService/DownloadDataSubjectArchive": admin,
  "/nexus.governance.v1.GovernanceService/GetGovernanceSettings": adminOrPlatform,
  "/nexus.governance.v1.GovernanceService/SetGovernanceSettings": admin,
  // ---- nexus.auth.v1.AuthService ----
  "/nexus.auth.v1.AuthService/CreateTenant": platformOnly,
  "/nexus.auth.v1.AuthService/GetTenant": readOrPlatform,
  // A temporal query (rate-limited, audited): admins of the tenant, and platform operators.
  "/nexus.auth.v1.AuthService/GetTenantAt": adminOrPlatform,
  "/nexus.auth.v1.AuthService/ListTenants": platformOnly,
  "/nexus.auth.v1.AuthService/SuspendTenant": platformOnly,
  "/nexus.auth.v1.AuthService/ResumeTenant": platformOnly,
  "/nexus.auth.v1.AuthService/SetPlan": platformOnly,
  "/nexus.auth.v1.AuthService/SetEntitlementOverrides": platformOnly,
  // The tenant record (slug, display name, plan, status) is the platform's: Tenant objects in
  // Kubernetes drive it, and a tenant-side rename would only be reverted by the operator.
  "/nexus.auth.v1.AuthService/UpdateTenant": platformOnly,
  "/nexus.auth.v1.AuthService/CreateApiKey": adminOrPlatform,
  "/nexus.auth.v1.AuthService/ListApiKeys": adminOrPlatform,
  "/nexus.auth.v1.AuthService/GetApiKey": adminOrPlatform,
  "/nexus.auth.v1.AuthService/RevokeApiKey": adminOrPlatform,
  "/nexus.auth.v1.AuthService/RotateApiKey": adminOrPlatform,
  "/nexus.auth.v1.AuthService/ReactivateApiKey": adminOrPlatform,
  "/nexus.auth.v1.AuthService/SetApiKeyRole": adminOrPlatform,
  "/nexus.auth.v1.AuthService/Authenticate": publicRpc,
  "/nexus.auth.v1.AuthService/WhoAmI": anyone,

  // ---- nexus.identity.v1.IdentityService (served by the auth role) ----
  // Members are managed by tenant admins (granting at most their own role) and by operators.
  "/nexus.identity.v1.IdentityService/AddMember": adminOrPlatform,
  "/nexus.identity.v1.IdentityService/GetMember": adminOrPlatform,
  "/nexus.identity.v1.IdentityService/ListMembers": adminOrPlatform,
  "/nexus.identity.v1.IdentityService/SetMemberRole": adminOrPlatform,
  "/nexus.identity.v1.IdentityService/RemoveMember": adminOrPlatform,
  "/nexus.identity.v1.IdentityService/SetPlatformOperator": platformOnly,
  // Single sign-on is sold as feature.identity.sso: the provider configuration needs it.
  "/nexus.identity.v1.IdentityService/SetIdentityProvider": ssoAdmin,
  "/nexus.identity.v1.IdentityService/GetIdentityProvider": ssoAdmin,
  // SCIM provisioning is sold as feature.identity.scim: its token needs it.
  "/nexus.identity.v1.IdentityService/RotateScimToken": scimAdmin,
  "/nexus.identity.v1.IdentityService/GetScimToken": scimAdmin,
  "/nexus.identity.v1.IdentityService/RevokeScimToken": scimAdmin,

  // ---- nexus.metering.v1.MeteringService ----
  // Reservations are made on behalf of a run: the agent forwards the caller's key.
  "/nexus.metering.v1.MeteringService/CheckQuota": readOrPlatform,
  "/nexus.metering.v1.MeteringService/CommitQuota": readOrPlatform,
  "/nexus.metering.v1.MeteringService/ReleaseQuota": readOrPlatform,
  "/nexus.metering.v1.MeteringService/GetUsageSummary": adminOrPlatform,
  "/nexus.metering.v1.MeteringService/GetUsageHistory": adminOrPlatform,
  // Any member may read its own tenant's quota (issue 5); only platform operators set it.
  "/nexus.metering.v1.MeteringService/GetQuota": readOrPlatform,
  "/nexus.metering.v1.MeteringService/SetQuota": platformOnly,

  // ---- nexus.ingestion.v1.IngestionService ----
  "/nexus.ingestion.v1.IngestionService/IngestText": write,
  "/nexus.ingestion.v1.IngestionService/UploadDocument": write,
  "/nexus.ingestion.v1.IngestionService/UploadFile": write,
  "/nexus.ingestion.v1.IngestionService/GetDocument": read,
  "/nexus.ingestion.v1.IngestionService/ListDocuments": read,
  "/nexus.ingestion.v1.IngestionService/WatchDocument": read,
  "/nexus.ingestion.v1.IngestionService/ReindexDocument": write,
  "/nexus.ingestion.v1.IngestionService/DeleteDocument": write,
  "/nexus.ingestion.v1.IngestionService/ListDeadLetters": platformOnly,
  "/nexus.ingestion.v1.IngestionService/ReplayDeadLetter": platformOnly,

  // ---- nexus.retrieval.v1.RetrievalService ----
  "/nexus.retrieval.v1.RetrievalService/CreateCorpus": admin,
  "/nexus.retrieval.v1.RetrievalService/GetCorpus": read,
  "/nexus.retrieval.v1.RetrievalService/ListCorpora": read,
  "/nexus.retrieval.v1.RetrievalService/UpdateCorpus": admin,
  "/nexus.retrieval.v1.RetrievalService/DeleteCorpus": admin,
  "/nexus.retrieval.v1.RetrievalService/Search": read,
  "/nexus.retrieval.v1.RetrievalService/GetDocumentText": read,
  // Who may read a document: tenant admins (docs/identity.md, "Document access").
  "/nexus.retrieval.v1.RetrievalService/SetDocumentAccess": admin,
  "/nexus.retrieval.v1.RetrievalService/GetDocumentAccess": admin,
  // Whether admins bypass document access is the owners' call (checked in the handler).
  "/nexus.retrieval.v1.RetrievalService/SetDocumentAccessSettings": admin,
  // Cedar policies and label rules, and simulating them: tenant admins (docs/identity.md, "Policies").
  "/nexus.retrieval.v1.RetrievalService/SavePolicy": admin,
  "/nexus.retrieval.v1.RetrievalService/SetPolicyEnabled": admin,
  "/nexus.retrieval.v1.RetrievalService/DeletePolicy": admin,
  "/nexus.retrieval.v1.RetrievalService/ListPolicies": admin,
  "/nexus.retrieval.v1.RetrievalService/SetLabelRules": admin,
  "/nexus.retrieval.v1.RetrievalService/SimulatePolicy": admin,

  // ---- nexus.integration.v1.IntegrationService ----
  // Tenant admins manage sender apps, destinations (credentials) and MQTT sources; editors
  // edit workflows and send messages; viewers read workflows and the execution log. Platform
  // keys may manage apps, destinations and workflows for a named tenant: the Nexus operator
  // reconciles the SenderApp, Destination and Workflow custom resources with one (docs/kubernetes.md).
  "/nexus.integration.v1.IntegrationService/CreateSenderApp": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/GetSenderApp": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/ListSenderApps": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/UpdateSenderApp": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/DeleteSenderApp": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/RotateAppKey": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/RotateMasterSecret": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/Ingest": write,
  "/nexus.integration.v1.IntegrationService/ExecuteWorkflow": write,
  "/nexus.integration.v1.IntegrationService/CreateDestination": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/GetDestination": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/ListDestinations": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/UpdateDestination": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/DeleteDestination": adminOrPlatform,
  "/nexus.integration.v1.IntegrationService/TestDestination": admin,
  "/nexus.integration.v1.IntegrationService/ListDestinationTables": admin,
  "/nexus.integration.v1.IntegrationService/ListDestinationColumns": admin,
  "/nexus.integration.v1.IntegrationService/CreateWorkflow": writeOrPlatform,
  "/nexus.integration.v1.IntegrationService/GetWorkflow": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/ListWorkflows": readOrPlatform,
  "/nexus.integration.v1.IntegrationService/UpdateWorkflow": writeOrPlatform,
  "/nexus.integration.v1.IntegrationService/RollbackWorkflow": write,
  "/nexus.integration.v1.IntegrationService/ListWorkflowVersions": read,
  "/nexus.integration.v1.IntegrationService/DeleteWorkflow": writeOrPlatform,
  "/nexus.integration.v1.IntegrationService/DisableWorkflow": write,
  "/nexus.integration.v1.IntegrationService/EnableWorkflow": write,
  "/nexus.integration.v1.IntegrationService/CreateMqttSource": admin,
  "/nexus.integration.v1.IntegrationService/GetMqttSource": read,
  "/nexus.integration.v1.IntegrationService/ListMqttSources": read,
  "/nexus.integration.v1.IntegrationService/DeleteMqttSource": admin,
  "/nexus.integration.v1.IntegrationService/ListExecutions": read,
  "/nexus.integration.v1.IntegrationService/TailExecutions": read,
  "/nexus.integration.v1.IntegrationService/ListDeadLetters": read,
  "/nexus.integration.v1.IntegrationService/ReplayDeadLetter": admin,
  // ---- nexus.integration.v1.EdgeService (edge agents, docs/edge.md) ----
  // The agents' own calls take no API key: the integration service checks the edge token
  // (nxe_…, scoped to its tenant and assigned apps) on every call (UNAUTHENTICATED
  // EDGE_TOKEN_INVALID / EDGE_TOKEN_REVOKED, PERMISSION_DENIED EDGE_APP_NOT_ASSIGNED).
  "/nexus.integration.v1.EdgeService/GetEdgeConfig": publicRpc,
  "/nexus.integration.v1.EdgeService/ForwardMessages": publicRpc,
  // Tenant admins register, assign and revoke edge agents; viewers see them.
  "/nexus.integration.v1.EdgeService/RegisterEdge": admin,
  "/nexus.integration.v1.EdgeService/ListEdges": read,
  "/nexus.integration.v1.EdgeService/GetEdge": read,
  "/nexus.integration.v1.EdgeService/RevokeEdge": admin,
  "/nexus.integration.v1.EdgeService/AssignEdgeApps": admin,
  "/nexus.integration.v1.EdgeService/UnassignEdgeApps": admin,

  // ---- nexus.agent.v1.AgentService ----
  "/nexus.agent.v1.AgentService/Run": read,
  "/nexus.agent.v1.AgentService/CancelRun": read,
  "/nexus.agent.v1.AgentService/WatchRun": read,
  "/nexus.agent.v1.AgentService/GetSession": read,
  "/nexus.agent.v1.AgentService/ListSessions": read,
  "/nexus.agent.v1.AgentService/DeleteSession": write,

  // ---- nexus.audit.v1.AuditService ----
  "/nexus.audit.v1.AuditService/ListAuditEvents": auditAccess,
  "/nexus.audit.v1.AuditService/ExportAuditEvents": auditAccess,
  "/nexus.audit.v1.AuditService/VerifyAuditChain": auditAccess,

  // ---- nexus.eventstore.v1.EventStoreService ----
  // A tenant's change feed carries its content's events (document names, session titles):
  // tenant admins and owners only, like the rest of tenant content.
  "/nexus.eventstore.v1.EventStoreService/WatchEvents": admin,
  // The catalogue is schema, not data.
  "/nexus.eventstore.v1.EventStoreService/ListEventTypes": anyone,
  // Temporal queries read a tenant's history: its admins and owners (rate-limited, audited).
  "/nexus.eventstore.v1.EventStoreService/ReadStreamHistory": admin,
  // Saga status: tenant admins and owners see their tenant's; platform operators every saga
  // (tenant offboarding runs while the tenant's own keys are suspended).
  "/nexus.eventstore.v1.EventStoreService/GetSaga": adminOrPlatform,
  "/nexus.eventstore.v1.EventStoreService/ListSagas": adminOrPlatform,
  // Offboarding deletes the tenant: platform operators only, not even the tenant's owner.
  "/nexus.eventstore.v1.EventStoreService/StartTenantOffboarding": platformOnly,
  // ---- nexus.modules.v1.ModulesService ----
  // Editors submit and build; admins review, activate (and roll back) and hold credentials;
  // any member may read modules and call active tools (a Run forwards the caller's key).
  "/nexus.modules.v1.ModulesService/SubmitModuleVersion": write,
  "/nexus.modules.v1.ModulesService/BuildModule": write,
  "/nexus.modules.v1.ModulesService/ReviewModuleVersion": admin,
  "/nexus.modules.v1.ModulesService/ActivateModuleVersion": admin,
  "/nexus.modules.v1.ModulesService/GetModule": read,
  "/nexus.modules.v1.ModulesService/ListModules": read,
  "/nexus.modules.v1.ModulesService/CallTool": read,
  "/nexus.modules.v1.ModulesService/SetCredential": admin,
  "/nexus.modules.v1.ModulesService/ListCredentials": admin,
  "/nexus.modules.v1.ModulesService/DeleteCredential": admin,
  // The marketplace: admins publish their tenant's approved versions, install listings and
  // read their revenue; members browse and rate.
  "/nexus.modules.v1.ModulesService/PublishModule": admin,
  // Published modules are reviewed by platform operators before any tenant sees them.
  "/nexus.modules.v1.ModulesService/ReviewListing": platformOnly,
  "/nexus.modules.v1.ModulesService/ListListings": read,
  "/nexus.modules.v1.ModulesService/InstallListing": admin,
  "/nexus.modules.v1.ModulesService/RateListing": write,
  "/nexus.modules.v1.ModulesService/GetRevenue": admin,
});

/** `/<service type name>/<method name>`, the key of {@link PERMISSIONS}. */
export function procedureOf(serviceTypeName: string, methodName: string): string {
  return `/${serviceTypeName}/${methodName}`;
}

/** A method's procedure name and rule, worked out once per method descriptor (see {@link ruleOfMethod}). */
export interface MethodRule {
  procedure: string;
  permission: Permission | undefined;
}

const methodRules = new WeakMap<object, MethodRule>();

/**
 * {@link procedureOf} and {@link permissionOf} of a method, cached per method descriptor (the
 * table is a constant, and connect hands every call the same descriptor object): no string
 * building or table lookup per call.
 */
export function ruleOfMethod(method: { readonly name: string; readonly parent: { readonly typeName: string } }): MethodRule {
  let rule = methodRules.get(method);
  if (rule === undefined) {
    const procedure = procedureOf(method.parent.typeName, method.name);
    rule = { procedure, permission: permissionOf(procedure) };
    methodRules.set(method, rule);
  }
  return rule;
}

/** The rule of a procedure, or undefined when the table does not list it (deny). */
export function permissionOf(procedure: string): Permission | undefined {
  return Object.hasOwn(PERMISSIONS, procedure) ? PERMISSIONS[procedure] : undefined;
}
