import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ActorKind, type AuditEvent, AuditEventSchema, AuditOutcome } from "../../gen/nexus/audit/v1/audit_event_pb.js";
import type { AuditEventFilter } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import type { AuditEntry, ActorKind as Kind } from "./domain/audit-entry.js";
import type { AuditQuery } from "./ports.js";

const KIND: Readonly<Record<Kind, ActorKind>> = {
  platform: ActorKind.PLATFORM,
  tenant: ActorKind.TENANT,
  system: ActorKind.SYSTEM,
  anonymous: ActorKind.ANONYMOUS,
  unknown: ActorKind.UNSPECIFIED,
};

/** The AuditEvent message of a stored entry. */
export function entryToMessage(e: AuditEntry): AuditEvent {
  return create(AuditEventSchema, {
    id: e.id,
    sequence: BigInt(e.sequence),
    tenantId: e.tenantId,
    occurredAt: timestampFromDate(e.occurredAt),
    eventType: e.eventType,
    actor: { kind: KIND[e.actor.kind], keyId: e.actor.keyId, name: e.actor.name, role: e.actor.role },
    action: e.action,
    resource: e.resource,
    outcome: e.outcome === "success" ? AuditOutcome.SUCCESS : AuditOutcome.FAILURE,
    requestId: e.requestId,
    correlationId: e.correlationId,
    ...(e.before ? { before: e.before } : {}),
    ...(e.after ? { after: e.after } : {}),
    ...(e.metadata ? { metadata: e.metadata } : {}),
    sourceEventId: e.sourceEventId,
    prevHash: e.prevHash,
    hash: e.hash,
  });
}

/** The store query of a request's filter on a chain. */
export function queryOf(tenantId: string, f: AuditEventFilter | undefined): AuditQuery {
  return {
    tenantId,
    eventTypes: f?.eventTypes ?? [],
    actorKeyId: f?.actorKeyId || undefined,
    outcome: f?.outcome === AuditOutcome.SUCCESS ? "success" : f?.outcome === AuditOutcome.FAILURE ? "failure" : undefined,
    from: f?.startTime ? timestampDate(f.startTime) : undefined,
    to: f?.endTime ? timestampDate(f.endTime) : undefined,
    resourceType: f?.resourceType || undefined,
    resourceId: f?.resourceId || undefined,
  };
}

/** A stable string of a query (page tokens are bound to it). */
export function queryBinding(q: AuditQuery): string {
  return JSON.stringify([
    q.tenantId,
    [...q.eventTypes].sort(),
    q.actorKeyId,
    q.outcome,
    q.from?.toISOString(),
    q.to?.toISOString(),
    q.resourceType,
    q.resourceId,
  ]);
}
