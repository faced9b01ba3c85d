import {
  DataSubjectRequestRetriedSchema,
  GovernanceSettingsChangedSchema,
  LegalHoldPlacedSchema,
  LegalHoldReleasedSchema,
  RetentionPolicyChangedSchema,
} from "../../../gen/nexus/events/v1/governance_events_pb.js";
import { recordFacts } from "../commands/index.js";
import type { Database, Tx } from "../db/ports.js";
import { domainError } from "../errors.js";
import type { NewEvent } from "../events/ports.js";
import { eventOf } from "../events/protobuf-event.js";
import { type HoldScope, type LegalHold, placeLegalHold, releaseLegalHold } from "./legal-holds.js";
import { clearRetentionPolicy, type RetentionCategory, type RetentionPolicy, setRetentionPolicy } from "./retention.js";
import {
  type GovernanceSettings,
  governanceStreamId,
  retrySubjectRequest,
  type SubjectRequest,
  setGovernanceSettings,
} from "./subject-requests.js";

/**
 * Governance changes with their event, in one transaction: each lands in the tenant's audit
 * trail (docs/governance.md#administration-rpcs-and-cli). The GovernanceService and the
 * `nexus governance` CLI both change state only through these. `actor`: the caller's key id, or
 * `cli:<name>` for an operator at the CLI.
 */
const record = (tx: Tx, tenantId: string, actor: string, event: NewEvent) =>
  recordFacts(tx, governanceStreamId(tenantId), [event], { metadata: { actor, tenantId } });

export function placeLegalHoldRecorded(
  db: Database,
  actor: string,
  hold: { tenantId: string; scope: HoldScope; subjectId?: string; reason?: string },
): Promise<LegalHold> {
  return db.transaction(async (tx) => {
    const h = await placeLegalHold(tx, { ...hold, placedBy: actor });
    await record(
      tx,
      h.tenantId,
      actor,
      eventOf(LegalHoldPlacedSchema, { tenantId: h.tenantId, holdId: h.holdId, scope: h.scope, subjectId: h.subjectId, reason: h.reason }),
    );
    return h;
  });
}

export function releaseLegalHoldRecorded(db: Database, actor: string, tenantId: string, holdId: string): Promise<LegalHold> {
  return db.transaction(async (tx) => {
    const h = await releaseLegalHold(tx, tenantId, holdId, actor);
    await record(
      tx,
      tenantId,
      actor,
      eventOf(LegalHoldReleasedSchema, { tenantId, holdId: h.holdId, scope: h.scope, subjectId: h.subjectId }),
    );
    return h;
  });
}

export function setRetentionPolicyRecorded(db: Database, actor: string, policy: RetentionPolicy): Promise<RetentionPolicy> {
  return db.transaction(async (tx) => {
    const p = await setRetentionPolicy(tx, policy);
    await record(
      tx,
      p.tenantId,
      actor,
      eventOf(RetentionPolicyChangedSchema, { tenantId: p.tenantId, category: p.category, maxAgeDays: p.maxAgeDays, action: p.action }),
    );
    return p;
  });
}

/** Removes the policy; NOT_FOUND when there was none. */
export function clearRetentionPolicyRecorded(db: Database, actor: string, tenantId: string, category: RetentionCategory): Promise<void> {
  return db.transaction(async (tx) => {
    if (!(await clearRetentionPolicy(tx, tenantId, category)))
      throw domainError("NOT_FOUND", `tenant ${tenantId} has no retention policy for ${category}`, { category });
    await record(tx, tenantId, actor, eventOf(RetentionPolicyChangedSchema, { tenantId, category, maxAgeDays: 0, action: "" }));
  });
}

/** Restarts a failed data-subject request (governance.subject_request.retried in the audit trail). */
export function retrySubjectRequestRecorded(db: Database, actor: string, tenantId: string, requestId: string): Promise<SubjectRequest> {
  return db.transaction(async (tx) => {
    const r = await retrySubjectRequest(tx, tenantId, requestId);
    await record(tx, tenantId, actor, eventOf(DataSubjectRequestRetriedSchema, { tenantId, requestId }));
    return r;
  });
}

export function setGovernanceSettingsRecorded(db: Database, actor: string, settings: GovernanceSettings): Promise<GovernanceSettings> {
  return db.transaction(async (tx) => {
    const s = await setGovernanceSettings(tx, settings);
    await record(
      tx,
      s.tenantId,
      actor,
      eventOf(GovernanceSettingsChangedSchema, { tenantId: s.tenantId, eraseRequiresApproval: s.eraseRequiresApproval }),
    );
    return s;
  });
}
