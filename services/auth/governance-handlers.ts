import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  LegalHoldPlacedSchema,
  LegalHoldReleasedSchema,
  RetentionPolicyChangedSchema,
} from "../../gen/nexus/events/v1/governance_events_pb.js";
import {
  type ClearRetentionPolicyRequest,
  type GovernanceService,
  HoldScope,
  type ListLegalHoldsRequest,
  type ListRetentionPoliciesRequest,
  type ListRetentionReportsRequest,
  type PlaceLegalHoldRequest,
  type ReleaseLegalHoldRequest,
  RetentionAction,
  RetentionCategory,
  type SetRetentionPolicyRequest,
} from "../../gen/nexus/governance/v1/governance_service_pb.js";
import { principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import { recordFacts } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import {
  clearRetentionPolicy,
  type HoldScope as KernelHoldScope,
  type RetentionAction as KernelRetentionAction,
  type RetentionCategory as KernelRetentionCategory,
  type LegalHold,
  listLegalHolds,
  listRetentionPolicies,
  listRetentionReports,
  placeLegalHold,
  type RetentionPolicy,
  type RetentionReport,
  releaseLegalHold,
  setRetentionPolicy,
} from "../kernel/governance/index.js";

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

/** The stream of a tenant's governance facts (holds and policies). */
const streamOf = (tenantId: string) => `governance-${tenantId}`;

export class GovernanceServiceHandlers implements ServiceImpl<typeof GovernanceService> {
  constructor(private readonly db: Database) {}

  private scope(ctx: HandlerContext, tenantId: string) {
    const principal = principalOf(ctx);
    return { tenantId: tenantScope(principal, tenantId), actor: principal.keyId };
  }

  async placeLegalHold(req: PlaceLegalHoldRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const scope = fromProto(SCOPES, req.scope, "scope");
    if (scope === "tenant" && req.subjectId.trim() !== "")
      throw domainError("INVALID_ARGUMENT", "a tenant hold covers the whole tenant: leave subject_id empty", { field: "subject_id" });
    const hold = await this.db.transaction(async (tx) => {
      const h = await placeLegalHold(tx, { tenantId, scope, subjectId: req.subjectId, reason: req.reason, placedBy: actor });
      await recordFacts(
        tx,
        streamOf(tenantId),
        [eventOf(LegalHoldPlacedSchema, { tenantId, holdId: h.holdId, scope: h.scope, subjectId: h.subjectId, reason: h.reason })],
        { metadata: { actor, tenantId } },
      );
      return h;
    });
    return { hold: holdToMessage(hold) };
  }

  async listLegalHolds(req: ListLegalHoldsRequest, ctx: HandlerContext) {
    const { tenantId } = this.scope(ctx, req.tenantId);
    return { holds: (await listLegalHolds(this.db, tenantId, req.includeReleased)).map(holdToMessage) };
  }

  async releaseLegalHold(req: ReleaseLegalHoldRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const hold = await this.db.transaction(async (tx) => {
      const h = await releaseLegalHold(tx, tenantId, req.holdId, actor);
      await recordFacts(
        tx,
        streamOf(tenantId),
        [eventOf(LegalHoldReleasedSchema, { tenantId, holdId: h.holdId, scope: h.scope, subjectId: h.subjectId })],
        { metadata: { actor, tenantId } },
      );
      return h;
    });
    return { hold: holdToMessage(hold) };
  }

  async setRetentionPolicy(req: SetRetentionPolicyRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const category = fromProto(CATEGORIES, req.category, "category");
    const action = req.action === RetentionAction.UNSPECIFIED ? "delete" : fromProto(ACTIONS, req.action, "action");
    const policy = await this.db.transaction(async (tx) => {
      const p = await setRetentionPolicy(tx, { tenantId, category, maxAgeDays: req.maxAgeDays, action });
      await recordFacts(
        tx,
        streamOf(tenantId),
        [eventOf(RetentionPolicyChangedSchema, { tenantId, category, maxAgeDays: p.maxAgeDays, action: p.action })],
        { metadata: { actor, tenantId } },
      );
      return p;
    });
    return { policy: policyToMessage(policy) };
  }

  async clearRetentionPolicy(req: ClearRetentionPolicyRequest, ctx: HandlerContext) {
    const { tenantId, actor } = this.scope(ctx, req.tenantId);
    const category = fromProto(CATEGORIES, req.category, "category");
    await this.db.transaction(async (tx) => {
      if (!(await clearRetentionPolicy(tx, tenantId, category)))
        throw domainError("NOT_FOUND", `tenant ${tenantId} has no retention policy for ${category}`, { category });
      await recordFacts(
        tx,
        streamOf(tenantId),
        [eventOf(RetentionPolicyChangedSchema, { tenantId, category, maxAgeDays: 0, action: "" })],
        { metadata: { actor, tenantId } },
      );
    });
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
