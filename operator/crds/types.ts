import type { FAILOVER_MODES, FAILOVER_PHASES } from "./failover-crd.js";
import type { HARD_CAP_MODES } from "./quota-crd.js";
import type { KEY_ROLES, TENANT_PLANS } from "./tenant-crd.js";

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
