import type { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import {
  EntitlementOverridesChangedSchema,
  PlanChangedSchema,
  TenantCreatedSchema,
  TenantDisplayNameChangedSchema,
  TenantResumedSchema,
  TenantSuspendedSchema,
} from "../../gen/nexus/events/v1/auth_events_pb.js";
import type { EntitlementOverrides } from "../kernel/authz/plans.js";
import { planFromProto } from "../kernel/authz/principal-proto.js";
import type { EventSourcing, SnapshotPolicy } from "../kernel/commands/index.js";
import type { PlanName } from "../kernel/context.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { payloadOf } from "../kernel/events/protobuf-event.js";
import type { Tenant, TenantEvent } from "./domain/tenant.js";
import { overridesFromMessage } from "./proto-mapping.js";

/**
 * The tenant aggregate is event-sourced for real: its stream `tenant-<id>` holds every fact
 * its state is made of (the payloads of auth_events.proto plus each event's `occurredAt`), so
 * commands rebuild it by replaying the stream and `auth.tenants` is a projection written in
 * the same transaction. This file turns stored events back into domain events and says how
 * tenant snapshots are written and read.
 */

function plan(p: Plan, event: RecordedEvent): PlanName {
  const name = planFromProto(p);
  if (name === undefined) throw new Error(`${event.type} at ${event.streamId}@${event.version} has no known plan`);
  return name;
}

/** The domain event a stored tenant event stands for (undefined: not a tenant event). */
export function tenantEventFromRecorded(event: RecordedEvent): TenantEvent | undefined {
  const at = event.occurredAt;
  switch (event.type) {
    case TenantCreatedSchema.typeName: {
      const p = payloadOf(TenantCreatedSchema, event);
      return { type: "TenantCreated", tenantId: p.tenantId, slug: p.slug, displayName: p.displayName, plan: plan(p.plan, event), at };
    }
    case TenantSuspendedSchema.typeName: {
      const p = payloadOf(TenantSuspendedSchema, event);
      return { type: "TenantSuspended", tenantId: p.tenantId, reason: p.reason, at };
    }
    case TenantResumedSchema.typeName:
      return { type: "TenantResumed", tenantId: payloadOf(TenantResumedSchema, event).tenantId, at };
    case PlanChangedSchema.typeName: {
      const p = payloadOf(PlanChangedSchema, event);
      return { type: "PlanChanged", tenantId: p.tenantId, previousPlan: plan(p.previousPlan, event), plan: plan(p.plan, event), at };
    }
    case EntitlementOverridesChangedSchema.typeName: {
      const p = payloadOf(EntitlementOverridesChangedSchema, event);
      return {
        type: "EntitlementOverridesChanged",
        tenantId: p.tenantId,
        previous: overridesFromMessage(p.previousOverrides),
        overrides: overridesFromMessage(p.overrides),
        at,
      };
    }
    case TenantDisplayNameChangedSchema.typeName: {
      const p = payloadOf(TenantDisplayNameChangedSchema, event);
      return {
        type: "TenantDisplayNameChanged",
        tenantId: p.tenantId,
        previousDisplayName: p.previousDisplayName,
        displayName: p.displayName,
        at,
      };
    }
    default:
      return undefined;
  }
}

/** Version of the tenant snapshot's JSON shape ({@link tenantSnapshots}). */
export const TENANT_SNAPSHOT_SCHEMA = 1;

interface TenantSnapshotV1 {
  id: string;
  slug: string;
  displayName: string;
  plan: PlanName;
  status: Tenant["status"];
  overrides: EntitlementOverrides;
  suspensionReason: string;
  createdAt: string;
  updatedAt: string;
  suspendedAt: string | null;
}

function isSnapshotV1(x: unknown): x is TenantSnapshotV1 {
  if (typeof x !== "object" || x === null) return false;
  const o = x as Record<string, unknown>;
  return (
    typeof o.id === "string" &&
    typeof o.slug === "string" &&
    typeof o.displayName === "string" &&
    typeof o.plan === "string" &&
    (o.status === "active" || o.status === "suspended") &&
    typeof o.overrides === "object" &&
    o.overrides !== null &&
    typeof o.createdAt === "string" &&
    typeof o.updatedAt === "string"
  );
}

/**
 * Tenant snapshots: taken every 100 events, 256 KiB of payload or day (the kernel defaults).
 * Tenants rarely grow long streams; the policy keeps the rare busy one (overrides edited by
 * automation) cheap to load. A snapshot of an unknown shape is refused and rebuilt.
 */
export const tenantSnapshots: SnapshotPolicy<Tenant> = {
  aggregate: "tenant",
  schemaVersion: TENANT_SNAPSHOT_SCHEMA,
  toSnapshot: (t): TenantSnapshotV1 => ({
    id: t.id,
    slug: t.slug,
    displayName: t.displayName,
    plan: t.plan,
    status: t.status,
    overrides: t.overrides,
    suspensionReason: t.suspensionReason,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
    suspendedAt: t.suspendedAt?.toISOString() ?? null,
  }),
  fromSnapshot(data, schemaVersion) {
    if (schemaVersion !== TENANT_SNAPSHOT_SCHEMA || !isSnapshotV1(data)) return undefined;
    return {
      id: data.id,
      slug: data.slug,
      displayName: data.displayName,
      plan: data.plan,
      status: data.status,
      overrides: data.overrides,
      suspensionReason: data.suspensionReason ?? "",
      createdAt: new Date(data.createdAt),
      updatedAt: new Date(data.updatedAt),
      suspendedAt: data.suspendedAt ? new Date(data.suspendedAt) : undefined,
    };
  },
};

/** The tenant aggregate's event sourcing: decode, plus snapshots. */
export const tenantEventSourcing: EventSourcing<Tenant, TenantEvent, string> = {
  fromEvent: (event) => tenantEventFromRecorded(event),
  snapshots: tenantSnapshots,
};
