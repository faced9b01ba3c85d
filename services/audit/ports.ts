import type { Tx } from "../kernel/db/ports.js";
import type { ActorKind, AuditEntry, AuditOutcome } from "./domain/audit-entry.js";

/** An API key as the audit trail knows it. */
export interface KnownActor {
  keyId: string;
  kind: Extract<ActorKind, "platform" | "tenant">;
  name: string;
  role: string;
  tenantId: string;
}

/** Which entries to read (all given conditions hold). */
export interface AuditQuery {
  /** The chain: a tenant id, or "" for installation-wide entries. */
  tenantId: string;
  eventTypes: readonly string[];
  actorKeyId: string | undefined;
  outcome: AuditOutcome | undefined;
  /** occurred_at >= from. */
  from: Date | undefined;
  /** occurred_at < to. */
  to: Date | undefined;
  resourceType: string | undefined;
  resourceId: string | undefined;
}

/** The audit trail's writes, inside one open transaction. */
export interface AuditUnitOfWork {
  /** Serialises appends to one chain until the transaction ends. */
  lockChain(tenantId: string): Promise<void>;
  /** The chain's last entry (sequence and hash), or undefined when empty. */
  head(tenantId: string): Promise<{ sequence: number; hash: string } | undefined>;
  /** True when an entry built from this event exists. */
  hasSourceEvent(eventId: string): Promise<boolean>;
  append(entry: AuditEntry): Promise<void>;
  actor(keyId: string): Promise<KnownActor | undefined>;
  saveActor(actor: KnownActor): Promise<void>;
  /** Changes a known key's role (no-op for unknown keys). */
  setActorRole(keyId: string, role: string): Promise<void>;
}

/** The audit trail's storage. */
/**
 * What retention left of the entries it removed (docs/governance.md#retention): the last
 * removed entry's sequence and hash — where the kept chain continues — with a summary, signed
 * by the keyring.
 */
export interface AuditCheckpoint {
  tenantId: string;
  sequence: number;
  hash: string;
  entriesRemoved: number;
  firstOccurredAt: Date;
  lastOccurredAt: Date;
  /** Removed entries per event type. */
  eventTypes: Record<string, number>;
  /** The statement sealed under the tenant's `signatures` key ({@link checkpointStatement}); empty when unsigned. */
  signature: string;
  createdAt: Date;
}

/** What a checkpoint's signature seals. */
export function checkpointStatement(c: Pick<AuditCheckpoint, "tenantId" | "sequence" | "hash" | "entriesRemoved">): string {
  return `nexus.audit.checkpoint.v1\n${c.tenantId}\n${c.sequence}\n${c.hash}\n${c.entriesRemoved}`;
}

export interface AuditStore {
  within(tx: Tx): AuditUnitOfWork;
  /** Entries newest first with sequence < `beforeSequence` (all when undefined). */
  listNewestFirst(q: AuditQuery, beforeSequence: number | undefined, limit: number): Promise<AuditEntry[]>;
  /** Entries oldest first with sequence > `afterSequence`. */
  listOldestFirst(q: AuditQuery, afterSequence: number, limit: number): Promise<AuditEntry[]>;
  /** The whole chain, oldest first, in pages (for verification). */
  chainPage(tenantId: string, afterSequence: number, limit: number): Promise<AuditEntry[]>;
  /** The newest retention checkpoint of the tenant's chain (entries up to it were removed). */
  latestCheckpoint(tenantId: string): Promise<AuditCheckpoint | undefined>;
}
