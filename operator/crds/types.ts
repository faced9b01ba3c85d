import type { REST_AUTHS, SQL_ENGINES } from "./destination-crd.js";
import type { FAILOVER_MODES, FAILOVER_PHASES } from "./failover-crd.js";
import type { HARD_CAP_MODES } from "./quota-crd.js";
import type { FIELD_TYPES } from "./sender-app-crd.js";
import type { KEY_ROLES, TENANT_PLANS } from "./tenant-crd.js";
import type { NULL_STRATEGIES, ON_ERROR, SQL_OPERATIONS, STEP_TYPES, WORKFLOW_KINDS } from "./workflow-crd.js";

/** `metav1.Condition`. */
export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** The object metadata fields the operator reads and writes. */
export interface ObjectMeta {
  name: string;
  namespace: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  finalizers?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A namespaced Nexus custom resource. */
export interface NexusResource<Spec, Status> {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  spec: Spec;
  status?: Status;
}

/** Status fields every Nexus resource has. */
export interface CommonStatus {
  observedGeneration?: number;
  phase?: string;
  conditions?: Condition[];
}

/** A Tenant plan. */
export type TenantPlan = (typeof TENANT_PLANS)[number];
/** An API key role. */
export type KeyRole = (typeof KEY_ROLES)[number];

/** One API key a Tenant asks for. */
export interface TenantApiKeySpec {
  name: string;
  role: KeyRole;
  secretName: string;
}

/** Tenant.spec */
export interface TenantSpec {
  slug: string;
  displayName: string;
  plan: TenantPlan;
  suspended?: boolean;
  apiKeys?: TenantApiKeySpec[];
}

/** One API key as the operator last saw it. */
export interface TenantApiKeyStatus {
  name: string;
  keyId?: string;
  secretName?: string;
  rotation?: string;
  authenticated?: boolean;
}

/** Tenant.status */
export interface TenantStatus extends CommonStatus {
  tenantId?: string;
  usage?: string;
  lastVerifiedAt?: string;
  apiKeys?: TenantApiKeyStatus[];
}

/** A Tenant object. */
export type Tenant = NexusResource<TenantSpec, TenantStatus>;

/** Limits of one period. */
export interface QuotaLimitsSpec {
  runs?: number;
  runUnits?: number;
}

/** Quota.spec */
export interface QuotaSpec {
  tenantRef: { name: string };
  daily?: QuotaLimitsSpec;
  monthly?: QuotaLimitsSpec;
  softCapRatio?: number;
  hardCapMode?: (typeof HARD_CAP_MODES)[number];
}

/** One quota window in status. */
export interface QuotaWindowStatus {
  runsUsed?: number;
  runsLimit?: number;
  runUnitsUsed?: number;
  runUnitsLimit?: number;
  softCapReached?: boolean;
  hardCapReached?: boolean;
  resetsAt?: string;
}

/** Quota.status */
export interface QuotaStatus extends CommonStatus {
  tenantId?: string;
  used?: string;
  limit?: string;
  daily?: QuotaWindowStatus;
  monthly?: QuotaWindowStatus;
  lastSyncedAt?: string;
}

/** A Quota object. */
export type Quota = NexusResource<QuotaSpec, QuotaStatus>;

/** A failover phase. */
export type FailoverPhase = (typeof FAILOVER_PHASES)[number];

/** Failover.spec */
export interface FailoverSpec {
  targetRegion: string;
  reason: string;
  mode?: (typeof FAILOVER_MODES)[number];
  maxReplicationLagSeconds?: number;
  rollback?: boolean;
}

/** Failover.status */
export interface FailoverStatus extends CommonStatus {
  phase?: FailoverPhase;
  sourceRegion?: string;
  sourceEndpoint?: string;
  targetEndpoint?: string;
  replicationLagSeconds?: number;
  failureReason?: string;
  startedAt?: string;
  phaseStartedAt?: string;
  finishedAt?: string;
  history?: { phase: string; at: string; message?: string }[];
}

/** A Failover object. */
export type Failover = NexusResource<FailoverSpec, FailoverStatus>;

/** A reference to an object of the same namespace. */
export interface LocalRef {
  name: string;
}

/** A key of a Secret in the object's namespace (`key` is defaulted by the schema). */
export interface SecretKeyRef {
  name: string;
  key?: string;
}

/** Status fields the integration kinds share. */
export interface IntegrationStatus extends CommonStatus {
  tenantId?: string;
  lastAppliedAt?: string;
}

/** SenderApp.spec */
export interface SenderAppSpec {
  tenantRef: LocalRef;
  fields?: { name: string; type?: (typeof FIELD_TYPES)[number]; required?: boolean }[];
  encryptionRequired?: boolean;
  keySecretName: string;
}

/** SenderApp.status */
export interface SenderAppStatus extends IntegrationStatus {
  appId?: string;
  keyPrefix?: string;
}

/** A SenderApp object. */
export type SenderApp = NexusResource<SenderAppSpec, SenderAppStatus>;

/** Destination.spec (exactly one of rest, sql, nats, corpus). */
export interface DestinationSpec {
  tenantRef: LocalRef;
  rest?: {
    url: string;
    method?: string;
    auth?: (typeof REST_AUTHS)[number];
    username?: string;
    apiKeyHeader?: string;
    headers?: Record<string, string>;
    timeoutMs?: number;
    retryStatusCodes?: number[];
    secretRef?: SecretKeyRef;
  };
  sql?: {
    engine: (typeof SQL_ENGINES)[number];
    host: string;
    port: number;
    database: string;
    user: string;
    passwordSecretRef: SecretKeyRef;
    ssl?: boolean;
    poolMax?: number;
  };
  nats?: { subject: string };
  corpus?: { corpusId: string; apiKeySecretRef: SecretKeyRef };
}

/** Destination.status */
export interface DestinationStatus extends IntegrationStatus {
  destinationId?: string;
  type?: string;
  secretVersion?: string;
}

/** A Destination object. */
export type Destination = NexusResource<DestinationSpec, DestinationStatus>;

/** One workflow target. */
export interface WorkflowTargetSpec {
  destinationRef: LocalRef;
  transform?: string;
  condition?: string;
  path?: string;
  title?: string;
  sql?: {
    operation: (typeof SQL_OPERATIONS)[number];
    table: string;
    keyColumns?: string[];
    partial?: boolean;
    mappings?: {
      source: string;
      column: string;
      type?: (typeof FIELD_TYPES)[number];
      default?: string;
      nullStrategy?: (typeof NULL_STRATEGIES)[number];
    }[];
  };
}

/** One step of a sequential workflow. */
export interface WorkflowStepSpec {
  name: string;
  type: (typeof STEP_TYPES)[number];
  target?: WorkflowTargetSpec;
  expression?: string;
  thenStep?: string;
  elseStep?: string;
  nextStep?: string;
  delayMs?: number;
  onError?: (typeof ON_ERROR)[number];
  maxRetries?: number;
}

/** Workflow.spec */
export interface WorkflowSpec {
  tenantRef: LocalRef;
  kind?: (typeof WORKFLOW_KINDS)[number];
  source: { senderAppRef: LocalRef };
  targets?: WorkflowTargetSpec[];
  steps?: WorkflowStepSpec[];
  retentionHours?: number;
}

/** Workflow.status */
export interface WorkflowStatus extends IntegrationStatus {
  workflowId?: string;
  version?: number;
  subject?: string;
}

/** A Workflow object. */
export type Workflow = NexusResource<WorkflowSpec, WorkflowStatus>;
