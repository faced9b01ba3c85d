import { createHash } from "node:crypto";
import type { JsonValue } from "./redaction.js";

/**
 * One entry of a tenant's append-only audit trail, and the canonical form its hash covers.
 *
 * Chain rule: entry n stores `prev_hash` = hash of entry n−1 (64 zeros for n = 1) and
 *   hash = hex SHA-256( prev_hash + "\n" + canonical(entry) )
 * where canonical(entry) is the JSON object below with keys sorted at every depth, no
 * whitespace, `occurred_at` as ISO-8601 UTC with milliseconds and `sequence` as a decimal
 * string. Every value of the CSV export except `hash` and `prev_hash` is part of it, so anyone
 * holding an export can recompute the chain (docs/metering-and-audit.md shows how).
 */

/** Kinds of actor. `unknown`: a key this trail has not seen issued. */
export type ActorKind = "platform" | "tenant" | "system" | "anonymous" | "unknown";

/** Who performed an audited action. */
export interface AuditActor {
  kind: ActorKind;
  /** Empty for system and anonymous actors without a claimed key. */
  keyId: string;
  name: string;
  /** Lower case; empty when none. */
  role: string;
}

/** Success or failure of the audited action. */
export type AuditOutcome = "success" | "failure";

/** A JSON object of details (already redacted). */
export type JsonObject = { [key: string]: JsonValue };

/** An entry before it is placed in its chain. */
export interface AuditDraft {
  /** "" for installation-wide entries. */
  tenantId: string;
  occurredAt: Date;
  eventType: string;
  actor: AuditActor;
  action: string;
  resource: { type: string; id: string };
  outcome: AuditOutcome;
  requestId: string;
  correlationId: string;
  before: JsonObject | undefined;
  after: JsonObject | undefined;
  metadata: JsonObject | undefined;
  sourceEventId: string;
}

/** A stored entry. */
export interface AuditEntry extends AuditDraft {
  id: string;
  /** From 1 per chain, without gaps. */
  sequence: number;
  prevHash: string;
  hash: string;
}

/** prev_hash of the first entry of a chain. */
export const GENESIS_HASH = "0".repeat(64);

/** JSON with object keys sorted at every depth (arrays keep their order). */
export function canonicalJson(value: JsonValue | undefined): string {
  if (value === undefined || value === null) return "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The canonical form of an entry (everything but its own hash and prev_hash). */
export function canonicalForm(e: Omit<AuditEntry, "hash" | "prevHash">): string {
  return canonicalJson({
    id: e.id,
    sequence: String(e.sequence),
    tenant_id: e.tenantId,
    occurred_at: e.occurredAt.toISOString(),
    event_type: e.eventType,
    actor: { kind: e.actor.kind, key_id: e.actor.keyId, name: e.actor.name, role: e.actor.role },
    action: e.action,
    resource: { type: e.resource.type, id: e.resource.id },
    outcome: e.outcome,
    request_id: e.requestId,
    correlation_id: e.correlationId,
    before: e.before ?? null,
    after: e.after ?? null,
    metadata: e.metadata ?? null,
    source_event_id: e.sourceEventId,
  });
}

/** The hash of an entry given its predecessor's hash. */
export function entryHash(prevHash: string, e: Omit<AuditEntry, "hash" | "prevHash">): string {
  return createHash("sha256")
    .update(`${prevHash}\n${canonicalForm(e)}`)
    .digest("hex");
}

/** Places a draft after the chain head (`undefined`: the chain is empty). */
export function chainEntry(draft: AuditDraft, id: string, head: { sequence: number; hash: string } | undefined): AuditEntry {
  const placed = { ...draft, id, sequence: (head?.sequence ?? 0) + 1 };
  const prevHash = head?.hash ?? GENESIS_HASH;
  return { ...placed, prevHash, hash: entryHash(prevHash, placed) };
}

/** The first place a chain does not hold. */
export interface BrokenLink {
  sequence: number;
  eventId: string;
  expectedHash: string;
  actualHash: string;
  problem: "hash_mismatch" | "prev_hash_mismatch" | "sequence_gap";
}

/**
 * Checks a chain entry by entry, oldest first, in constant memory (the export and the RPC
 * stream through it). Returns the first broken link, then keeps returning it.
 */
export class ChainVerifier {
  private expectedSequence: number;
  private previousHash: string;
  private broken: BrokenLink | undefined;

  /**
   * `start`: where the kept chain begins after retention removed older entries — the
   * checkpoint's last removed sequence and hash (docs/governance.md#retention); the genesis
   * otherwise.
   */
  constructor(start?: { sequence: number; hash: string }) {
    this.expectedSequence = (start?.sequence ?? 0) + 1;
    this.previousHash = start?.hash ?? GENESIS_HASH;
  }
  /** Entries checked so far. */
  checked = 0;

  /** The hash of the last entry checked (the chain's head once all were checked). */
  get headHash(): string {
    return this.previousHash;
  }

  /** The first broken link found, if any. */
  get firstBrokenLink(): BrokenLink | undefined {
    return this.broken;
  }

  /** Checks the next entry; returns the first broken link once one is found. */
  check(e: AuditEntry): BrokenLink | undefined {
    if (this.broken) return this.broken;
    this.checked++;
    if (e.sequence !== this.expectedSequence) {
      this.broken = {
        sequence: this.expectedSequence,
        eventId: e.id,
        expectedHash: this.previousHash,
        actualHash: e.prevHash,
        problem: "sequence_gap",
      };
    } else if (e.prevHash !== this.previousHash) {
      this.broken = {
        sequence: e.sequence,
        eventId: e.id,
        expectedHash: this.previousHash,
        actualHash: e.prevHash,
        problem: "prev_hash_mismatch",
      };
    } else {
      const expected = entryHash(e.prevHash, e);
      if (expected !== e.hash) {
        this.broken = { sequence: e.sequence, eventId: e.id, expectedHash: expected, actualHash: e.hash, problem: "hash_mismatch" };
      }
    }
    if (!this.broken) {
      this.previousHash = e.hash;
      this.expectedSequence++;
    }
    return this.broken;
  }
}
