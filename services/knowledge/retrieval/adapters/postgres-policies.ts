import {
  DocumentAccessSettingsChangedSchema,
  DocumentsWithheldSchema,
  LabelRulesChangedSchema,
  PolicyDeletedSchema,
  PolicyEnabledChangedSchema,
  PolicySavedSchema,
} from "../../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { type Aggregate, recordFacts } from "../../../kernel/commands/index.js";
import type { Database, Queryable } from "../../../kernel/db/ports.js";
import { domainError } from "../../../kernel/errors.js";
import { streamVersion } from "../../../kernel/events/event-store.js";
import { eventOf } from "../../../kernel/events/protobuf-event.js";
import { registerEventTopics } from "../../../kernel/events/topics.js";
import { TenantAccessCache } from "../access-cache.js";
import type { LabelRule, StoredPolicy } from "../policy-engine.js";

registerEventTopics({
  [PolicySavedSchema.typeName]: "retrieval.policy_saved",
  [PolicyEnabledChangedSchema.typeName]: "retrieval.policy_enabled_changed",
  [PolicyDeletedSchema.typeName]: "retrieval.policy_deleted",
  [DocumentAccessSettingsChangedSchema.typeName]: "retrieval.document_access_settings_changed",
  [LabelRulesChangedSchema.typeName]: "retrieval.label_rules_changed",
  [DocumentsWithheldSchema.typeName]: "retrieval.documents_withheld",
});

/** A policy's identity. */
export interface PolicyKey {
  tenantId: string;
  policyId: string;
}

/** Policy commands (validation happens before: the handler knows the label rules). */
export type PolicyCommand =
  | { type: "SavePolicy"; text: string; description: string; enabled: boolean; at: Date }
  | { type: "SetPolicyEnabled"; enabled: boolean; at: Date }
  | { type: "DeletePolicy"; at: Date };

/** Policy events: the whole new state. */
export interface PolicyEvent {
  type: "PolicySaved" | "PolicyEnabledChanged" | "PolicyDeleted";
  policy: StoredPolicy;
}

/** The aggregate's state: a deleted policy is its last version, marked (its row is then deleted). */
type PolicyState = StoredPolicy & { deleted?: true };

interface PolicyRow {
  policy_id: string;
  version: number;
  text: string;
  description: string;
  enabled: boolean;
  updated_at: Date | string;
}

const toPolicy = (r: PolicyRow): StoredPolicy => ({
  policyId: r.policy_id,
  version: r.version,
  text: r.text,
  description: r.description,
  enabled: r.enabled,
  updatedAt: new Date(r.updated_at),
});

/** Decides a policy command: a save is a new version; enabling an unknown policy is NOT_FOUND. */
export function decidePolicy(command: PolicyCommand, state: StoredPolicy | undefined, key: PolicyKey): PolicyEvent[] {
  if (command.type === "SavePolicy") {
    if (state && state.text === command.text && state.description === command.description && state.enabled === command.enabled) return [];
    return [
      {
        type: "PolicySaved",
        policy: {
          policyId: key.policyId,
          version: (state?.version ?? 0) + 1,
          text: command.text,
          description: command.description,
          enabled: command.enabled,
          updatedAt: command.at,
        },
      },
    ];
  }
  if (!state) throw domainError("NOT_FOUND", `policy ${key.policyId} not found`, { policy_id: key.policyId });
  if (command.type === "DeletePolicy") return [{ type: "PolicyDeleted", policy: state }];
  if (state.enabled === command.enabled) return [];
  return [{ type: "PolicyEnabledChanged", policy: { ...state, enabled: command.enabled, updatedAt: command.at } }];
}

/**
 * The policy aggregate (stream `policy-<tenant>-<policy>`), state in `retrieval.policies`. A
 * deleted policy's row is deleted; its stream stays (the audit trail), so a policy saved again
 * under the id continues the stream at version 1 of the text.
 */
export function policyAggregate(): Aggregate<PolicyState, PolicyEvent, PolicyCommand, PolicyKey> {
  return {
    streamId: (k) => `policy-${k.tenantId}-${k.policyId}`,
    async load(tx, key) {
      const { rows } = await tx.query<PolicyRow & { stream_version: number }>(
        `SELECT policy_id, version, text, description, enabled, updated_at, stream_version FROM retrieval.policies
         WHERE tenant_id = $1 AND policy_id = $2 FOR UPDATE`,
        [key.tenantId, key.policyId],
      );
      const row = rows[0];
      return row
        ? { state: toPolicy(row), version: row.stream_version }
        : { state: undefined, version: await streamVersion(tx, `policy-${key.tenantId}-${key.policyId}`) };
    },
    decide: decidePolicy,
    evolve: (_s, e) => (e.type === "PolicyDeleted" ? { ...e.policy, deleted: true } : e.policy),
    async save(tx, key, state, _expected, streamVersion) {
      if (state.deleted) {
        await tx.query("DELETE FROM retrieval.policies WHERE tenant_id = $1 AND policy_id = $2", [key.tenantId, key.policyId]);
        return;
      }
      await tx.query(
        `INSERT INTO retrieval.policies (tenant_id, policy_id, version, text, description, enabled, updated_at, stream_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, policy_id) DO UPDATE SET version = EXCLUDED.version, text = EXCLUDED.text,
           description = EXCLUDED.description, enabled = EXCLUDED.enabled, updated_at = EXCLUDED.updated_at,
           stream_version = EXCLUDED.stream_version`,
        [key.tenantId, key.policyId, state.version, state.text, state.description, state.enabled, state.updatedAt, streamVersion],
      );
    },
    toEvent: (event, _state, key) =>
      event.type === "PolicyDeleted"
        ? eventOf(
            PolicyDeletedSchema,
            { tenantId: key.tenantId, policyId: key.policyId, version: event.policy.version, text: event.policy.text },
            { metadata: { tenantId: key.tenantId } },
          )
        : event.type === "PolicySaved"
          ? eventOf(
              PolicySavedSchema,
              {
                tenantId: key.tenantId,
                policyId: key.policyId,
                version: event.policy.version,
                text: event.policy.text,
                enabled: event.policy.enabled,
                description: event.policy.description,
              },
              { metadata: { tenantId: key.tenantId } },
            )
          : eventOf(
              PolicyEnabledChangedSchema,
              { tenantId: key.tenantId, policyId: key.policyId, version: event.policy.version, enabled: event.policy.enabled },
              { metadata: { tenantId: key.tenantId } },
            ),
  };
}

/** The tenant's policies, by id. */
export async function listPolicies(q: Queryable, tenantId: string): Promise<StoredPolicy[]> {
  const { rows } = await q.query<PolicyRow>(
    "SELECT policy_id, version, text, description, enabled, updated_at FROM retrieval.policies WHERE tenant_id = $1 ORDER BY policy_id",
    [tenantId],
  );
  return rows.map(toPolicy);
}

/** Everything a decision of document access reads besides the access lists (cached per process). */
export interface AccessContext {
  policies: StoredPolicy[];
  defaultDeny: boolean;
  /** The tenant has restricted documents (else only policies and the default can withhold). */
  anyRestricted?: boolean;
}

/**
 * This process's cache of the tenants' access contexts and label rules, dropped by the
 * retrieval events (see access-cache.ts; started by the knowledge service): a policy enabled,
 * disabled, deleted or changed is in force at every replica within the event's delivery.
 */
export const accessCache = new TenantAccessCache<AccessContext>();

/** The tenant's enabled policies, default deny and whether any document is restricted. */
export function loadAccessContext(q: Queryable, tenantId: string): Promise<AccessContext> {
  return accessCache.context(tenantId, () => readAccessContext(q, tenantId));
}

async function readAccessContext(q: Queryable, tenantId: string): Promise<AccessContext> {
  const { rows } = await q.query<PolicyRow & { default_deny: boolean | null; any_restricted: boolean }>(
    `SELECT p.policy_id, p.version, p.text, p.description, p.enabled, p.updated_at,
       (SELECT s.default_deny FROM retrieval.document_access_settings s WHERE s.tenant_id = $1) AS default_deny,
       EXISTS (SELECT 1 FROM retrieval.document_access a WHERE a.tenant_id = $1 AND a.restricted) AS any_restricted
     FROM (SELECT 1) one LEFT JOIN retrieval.policies p ON p.tenant_id = $1 AND p.enabled
     ORDER BY p.policy_id`,
    [tenantId],
  );
  return {
    policies: rows.filter((r) => r.policy_id !== null).map(toPolicy),
    defaultDeny: rows[0]?.default_deny === true,
    anyRestricted: rows[0]?.any_restricted === true,
  };
}

/** The tenant's label rules (cached per process like the access context). */
export function readLabelRules(q: Queryable, tenantId: string): Promise<{ rules: LabelRule[]; version: number }> {
  return accessCache.rules(tenantId, async () => {
    const { rows } = await q.query<{ rules: LabelRule[]; version: number }>(
      "SELECT rules, version FROM retrieval.label_rules WHERE tenant_id = $1",
      [tenantId],
    );
    return { rules: rows[0]?.rules ?? [], version: rows[0]?.version ?? 0 };
  });
}

/** Replaces the tenant's label rules (LabelRulesChanged in the same transaction). */
export async function saveLabelRules(db: Database, tenantId: string, rules: readonly LabelRule[], actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.query(
      `INSERT INTO retrieval.label_rules (tenant_id, version, rules) VALUES ($1, 1, $2::jsonb)
       ON CONFLICT (tenant_id) DO UPDATE SET version = retrieval.label_rules.version + 1, rules = EXCLUDED.rules`,
      [tenantId, JSON.stringify(rules)],
    );
    await recordFacts(
      tx,
      `label_rules-${tenantId}`,
      [eventOf(LabelRulesChangedSchema, { tenantId, rules: rules.map((r) => `${r.key}=${r.allowedValues.join("|")}`) })],
      { metadata: { tenantId, actor } },
    );
  });
  accessCache.invalidate(tenantId);
}

/** Records one call's withheld documents, with the deciding rules and their counts. */
export async function recordWithheld(
  db: Database,
  tenantId: string,
  caller: { keyId: string; userId: string; procedure: string; corpusId: string },
  byRule: ReadonlyMap<string, number>,
): Promise<void> {
  const total = [...byRule.values()].reduce((a, b) => a + b, 0);
  if (total === 0) return;
  await db.transaction((tx) =>
    recordFacts(
      tx,
      `documents_withheld-${tenantId}`,
      [
        eventOf(DocumentsWithheldSchema, {
          tenantId,
          keyId: caller.keyId,
          userId: caller.userId,
          procedure: caller.procedure,
          corpusId: caller.corpusId,
          withheldDocuments: total,
          rules: [...byRule].sort(([a], [b]) => a.localeCompare(b)).map(([rule, n]) => `${rule}: ${n}`),
        }),
      ],
      { metadata: { tenantId, actor: caller.keyId } },
    ),
  );
}
