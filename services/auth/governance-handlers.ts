import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { DataSubjectRequestApprovedSchema, DataSubjectRequestCreatedSchema } from "../../gen/nexus/events/v1/governance_events_pb.js";
import {
  type ApproveDataSubjectRequestRequest,
  type ClearRetentionPolicyRequest,
  type CreateDataSubjectRequestRequest,
  DataSubjectRequestKind,
  DataSubjectRequestStatus,
  DataSubjectScope,
  type DownloadDataSubjectArchiveRequest,
  type GetDataSubjectRequestRequest,
  type GetGovernanceSettingsRequest,
  type GovernanceService,
  HoldScope,
  type ListDataSubjectRequestsRequest,
  type ListLegalHoldsRequest,
  type ListRetentionPoliciesRequest,
  type ListRetentionReportsRequest,
  type PlaceLegalHoldRequest,
  type ReleaseLegalHoldRequest,
  RetentionAction,
  RetentionCategory,
  type RetryDataSubjectRequestRequest,
  type SetGovernanceSettingsRequest,
  type SetRetentionPolicyRequest,
} from "../../gen/nexus/governance/v1/governance_service_pb.js";
import { principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import { recordFacts } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import {
  approveSubjectRequest,
  clearRetentionPolicyRecorded,
  createSubjectRequest,
  getGovernanceSettings,
  getSubjectArchive,
  getSubjectRequest,
  governanceStreamId,
  type HoldScope as KernelHoldScope,
  type RetentionAction as KernelRetentionAction,
  type RetentionCategory as KernelRetentionCategory,
  type LegalHold,
  listLegalHolds,
  listRetentionPolicies,
  listRetentionReports,
  listSubjectRequests,
  placeLegalHoldRecorded,
  type RetentionPolicy,
  type RetentionReport,
  releaseLegalHoldRecorded,
  retrySubjectRequestRecorded,
  type SubjectRequest,
  type SubjectRequestKind,
  type SubjectRequestStatus,
  type SubjectScope,
  setGovernanceSettingsRecorded,
  setRetentionPolicyRecorded,
} from "../kernel/governance/index.js";
import type { Keyring } from "../kernel/keyring/index.js";

/**
 * nexus.governance.v1.GovernanceService (docs/governance.md): legal holds and retention
 * policies over the kernel's governance tables, each change recorded as an event (so in the
 * tenant's audit trail) in the transaction that made it.
 */

const SCOPES: Readonly<Record<KernelHoldScope, HoldScope>> = {
  tenant: HoldScope.TENANT,
  document: HoldScope.DOCUMENT,
  session: HoldScope.SESSION,
  user: HoldScope.USER,
  key: HoldScope.KEY,
};
const CATEGORIES: Readonly<Record<KernelRetentionCategory, RetentionCategory>> = {
  sessions: RetentionCategory.SESSIONS,
  documents: RetentionCategory.DOCUMENTS,
  audit: RetentionCategory.AUDIT,
  usage: RetentionCategory.USAGE,
};
const ACTIONS: Readonly<Record<KernelRetentionAction, RetentionAction>> = {
  delete: RetentionAction.DELETE,
  anonymize: RetentionAction.ANONYMIZE,
};

function fromProto<K extends string, V>(table: Readonly<Record<K, V>>, value: V, field: string): K {
  const found = (Object.keys(table) as K[]).find((k) => table[k] === value);
  if (found === undefined) throw domainError("INVALID_ARGUMENT", `${field} is required`, { field });
  return found;
}

function holdToMessage(h: LegalHold) {
  return {
    holdId: h.holdId,
    tenantId: h.tenantId,
    scope: SCOPES[h.scope],
    subjectId: h.subjectId,
    reason: h.reason,
    placedBy: h.placedBy,
    placedAt: timestampFromDate(h.placedAt),
    ...(h.releasedAt ? { releasedAt: timestampFromDate(h.releasedAt) } : {}),
    releasedBy: h.releasedBy,
  };
}

const policyToMessage = (p: RetentionPolicy) => ({
  tenantId: p.tenantId,
  category: CATEGORIES[p.category],
  maxAgeDays: p.maxAgeDays,
  action: ACTIONS[p.action],
});

const reportToMessage = (r: RetentionReport & { ranAt: Date }) => ({
  tenantId: r.tenantId,
  category: CATEGORIES[r.category],
  target: r.target,
  action: ACTIONS[r.action],
  cutoff: timestampFromDate(r.cutoff),
  expired: r.expired,
  removed: r.removed,
  held: r.held,
  heldBy: r.heldBy,
  skippedReason: r.skippedReason,
  ranAt: timestampFromDate(r.ranAt),
});

const KINDS: Readonly<Record<SubjectRequestKind, DataSubjectRequestKind>> = {
  export: DataSubjectRequestKind.EXPORT,
  erase: DataSubjectRequestKind.ERASE,
};
const SUBJECT_SCOPES: Readonly<Record<SubjectScope, DataSubjectScope>> = {
  user: DataSubjectScope.USER,
  session: DataSubjectScope.SESSION,
  key: DataSubjectScope.KEY,
};
const STATUSES: Readonly<Record<SubjectRequestStatus, DataSubjectRequestStatus>> = {
  awaiting_approval: DataSubjectRequestStatus.AWAITING_APPROVAL,
  running: DataSubjectRequestStatus.RUNNING,
  done: DataSubjectRequestStatus.DONE,
  failed: DataSubjectRequestStatus.FAILED,
};

const subjectRequestToMessage = (r: SubjectRequest) => ({
  requestId: r.requestId,
  tenantId: r.tenantId,
  kind: KINDS[r.kind],
  scope: SUBJECT_SCOPES[r.subject.scope],
  subjectId: r.subject.id,
  status: STATUSES[r.status],
  requestedBy: r.requestedBy,
  approvedBy: r.approvedBy,
  approvalRequired: r.approvalRequired,
  error: r.error,
  parts: Object.entries(r.summary).map(([part, s]) => ({
    part,
    items: s.items,
    removed: s.removed ?? 0,
    kept: s.kept ?? 0,
    note: s.note ?? "",
    error: s.error ?? "",
    attempts: s.attempts ?? 0,
  })),
  createdAt: timestampFromDate(r.createdAt),
  ...(r.finishedAt ? { finishedAt: timestampFromDate(r.finishedAt) } : {}),
});

export class GovernanceServiceHandlers implements ServiceImpl<typeof GovernanceService> {
  constructor(
    private readonly db: Database,
    private readonly keyring: Keyring,
  ) {}

  private scope(ctx: HandlerContext, tenantId: string) {
    const principal = principalOf(ctx);
    return {
      tenantId: tenantScope(principal, tenantId),
      actor: principal.keyId,
      by: { keyId: principal.keyId, userId: principal.kind === "tenant" ? principal.userId : undefined },
    };
  }

  /**
   * Who acts as a user (docs/governance.md#data-subject-requests): its access token, its
   * sign-in sessions and the API keys it owns in the tenant — revoked and ended ones too, their
   * data stays. Auth owns these tables; the other services' parts match the ids in the event
   * metadata and the audit trail.
   */
  private async userActors(tenantId: string, userId: string): Promise<string[]> {
    const { rows } = await this.db.query<{ actor: string }>(
      `SELECT id AS actor FROM auth.api_keys WHERE tenant_id = $1 AND owner_user_id = $2
       UNION SELECT 'session:' || id FROM auth.sessions WHERE tenant_id = $1 AND user_id = $2
       UNION SELECT 'user:' || $2::text`,
      [tenantId, userId],
    );
    return rows.map((r) => r.actor).sort();
  }

  async createDataSubjectRequest(req: CreateDataSubjectRequestRequest, ctx: HandlerContext) {
    const { tenantId, actor, by } = this.scope(ctx, req.tenantId);
    const kind = fromProto(KINDS, req.kind, "kind");
    const scope = fromProto(SUBJECT_SCOPES, req.scope, "scope");
    const actors = scope === "user" && req.subjectId.trim() ? await this.userActors(tenantId, req.subjectId) : undefined;
    const request = await this.db.transaction(async (tx) => {
      const r = await createSubjectRequest(tx, {
        tenantId,
        kind,
        subject: { scope, id: req.subjectId, ...(actors ? { actors } : {}) },
        by,
        keyring: this.keyring,
      });
      await recordFacts(
        tx,
        governanceStreamId(tenantId),
        [
          eventOf(DataSubjectRequestCreatedSchema, {
            tenantId,
            requestId: r.requestId,
            kind,
            scope,
            subjectId: req.subjectId,
            approvalRequired: r.approvalRequired,
          }),
        ],
        { metadata: { actor, tenantId } },
      );
      return r;
    });
    return { request: subjectRequestToMessage(request) };
  }

  async approveDataSubjectRequest(req: ApproveDataSubjectRequestRequest, ctx: HandlerContext) {
    const { tenantId, actor, by } = this.scope(ctx, req.tenantId);
    const request = await this.db.transaction(async (tx) => {
      const r = await approveSubjectRequest(tx, tenantId, req.requestId, by);
      await recordFacts(
        tx,
        governanceStreamId(tenantId),
        [eventOf(DataSubjectRequestApprovedSchema, { tenantId, requestId: r.requestId, requestedBy: r.requestedBy })],
        { metadata: { actor, tenantId } },
      );
      return r;
    });
    return { request: subjectRequestToMessage(request) };
  }

  async retryDataSubjectRequest(req: RetryDataSubjectRequestRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    return { request: subjectRequestToMessage(await retrySubjectRequestRecorded(this.db, actor, tenantId, req.requestId)) };
  }

  async getDataSubjectRequest(req: GetDataSubjectRequestRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { request: subjectRequestToMessage(await getSubjectRequest(this.db, tenantId, req.requestId)) };
  }

  async listDataSubjectRequests(req: ListDataSubjectRequestsRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { requests: (await listSubjectRequests(this.db, tenantId, req.limit || 50)).map(subjectRequestToMessage) };
  }

  async downloadDataSubjectArchive(req: DownloadDataSubjectArchiveRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { archive: await getSubjectArchive(this.db, this.keyring, tenantId, req.requestId) };
  }

  async getGovernanceSettings(req: GetGovernanceSettingsRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { settings: await getGovernanceSettings(this.db, tenantId) };
  }

  async setGovernanceSettings(req: SetGovernanceSettingsRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    return {
      settings: await setGovernanceSettingsRecorded(this.db, actor, { tenantId, eraseRequiresApproval: req.eraseRequiresApproval }),
    };
  }

  async placeLegalHold(req: PlaceLegalHoldRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const scope = fromProto(SCOPES, req.scope, "scope");
    if (scope === "tenant" && req.subjectId.trim() !== "")
      throw domainError("INVALID_ARGUMENT", "a tenant hold covers the whole tenant: leave subject_id empty", { field: "subject_id" });
    const hold = await placeLegalHoldRecorded(this.db, actor, { tenantId, scope, subjectId: req.subjectId, reason: req.reason });
    return { hold: holdToMessage(hold) };
  }

  async listLegalHolds(req: ListLegalHoldsRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { holds: (await listLegalHolds(this.db, tenantId, req.includeReleased)).map(holdToMessage) };
  }

  async releaseLegalHold(req: ReleaseLegalHoldRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    return { hold: holdToMessage(await releaseLegalHoldRecorded(this.db, actor, tenantId, req.holdId)) };
  }

  async setRetentionPolicy(req: SetRetentionPolicyRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const category = fromProto(CATEGORIES, req.category, "category");
    const action = req.action === RetentionAction.UNSPECIFIED ? "delete" : fromProto(ACTIONS, req.action, "action");
    const policy = await setRetentionPolicyRecorded(this.db, actor, { tenantId, category, maxAgeDays: req.maxAgeDays, action });
    return { policy: policyToMessage(policy) };
  }

  async clearRetentionPolicy(req: ClearRetentionPolicyRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    await clearRetentionPolicyRecorded(this.db, actor, tenantId, fromProto(CATEGORIES, req.category, "category"));
    return {};
  }

  async listRetentionPolicies(req: ListRetentionPoliciesRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { policies: (await listRetentionPolicies(this.db, tenantId)).map(policyToMessage) };
  }

  async listRetentionReports(req: ListRetentionReportsRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { reports: (await listRetentionReports(this.db, tenantId, req.limit || 50)).map(reportToMessage) };
  }
}
