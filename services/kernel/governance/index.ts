/**
 * Governance in the kernel (docs/governance.md#retention-and-legal-holds): legal holds — the
 * one check every destructive path calls (`assertNoLegalHold`) — and per-tenant retention
 * that each service applies to its own tables (`retentionTask`).
 */

export { acquireLease, releaseLease } from "./leases.js";
export {
  activeLegalHolds,
  assertNoLegalHold,
  assertTenantNotHeld,
  HOLD_SCOPES,
  type HoldScope,
  type HoldSubject,
  holdLockKey,
  type LegalHold,
  listLegalHolds,
  placeLegalHold,
  releaseLegalHold,
} from "./legal-holds.js";
export { governanceMigrations } from "./migrations.js";
export {
  clearRetentionPolicyRecorded,
  placeLegalHoldRecorded,
  releaseLegalHoldRecorded,
  retrySubjectRequestRecorded,
  setGovernanceSettingsRecorded,
  setRetentionPolicyRecorded,
} from "./recorded.js";
export {
  type ActiveHold,
  ANONYMIZE_REFUSED,
  APPLIED_RETENTION_CATEGORIES,
  type CustomRetention,
  clearRetentionPolicy,
  keptByTenantHold,
  listRetentionPolicies,
  listRetentionReports,
  newRetentionReport,
  RETENTION_CATEGORIES,
  type RetentionAction,
  type RetentionCategory,
  type RetentionPolicy,
  type RetentionReport,
  type RetentionTarget,
  retentionHolds,
  retentionTask,
  runRetention,
  setRetentionPolicy,
} from "./retention.js";
export {
  approveSubjectRequest,
  createSubjectRequest,
  DEFAULT_PART_RETRY,
  type GovernanceSettings,
  getGovernanceSettings,
  getSubjectArchive,
  getSubjectRequest,
  governanceStreamId,
  listSubjectRequests,
  type PartResult,
  type PartRetryPolicy,
  partRetryDelayMs,
  type Requester,
  retrySubjectRequest,
  runSubjectRequests,
  SUBJECT_ARCHIVE_FORMAT,
  SUBJECT_PARTS,
  SUBJECT_SCOPES,
  type Subject,
  type SubjectArchive,
  type SubjectDataContributor,
  type SubjectPart,
  type SubjectRequest,
  type SubjectRequestKind,
  type SubjectRequestStatus,
  type SubjectScope,
  setGovernanceSettings,
  subjectActors,
  subjectRequestTask,
  verifySubjectArchive,
} from "./subject-requests.js";
