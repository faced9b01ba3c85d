import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import {
  type AuditActor,
  type AuditDraft,
  type AuditEntry,
  type BrokenLink,
  ChainVerifier,
  chainEntry,
  type JsonObject,
} from "./domain/audit-entry.js";
import { type AuditSourceEvent, taxonomyEntry } from "./domain/audit-taxonomy.js";
import { redact } from "./domain/redaction.js";
import type { AuditCheckpoint, AuditQuery, AuditStore, AuditUnitOfWork } from "./ports.js";

/** Options of {@link AuditApplication}. */
export interface AuditApplicationOptions {
  store: AuditStore;
  /** More keys to redact (NEXUS_AUDIT_EXTRA_REDACT_KEYS). */
  extraRedactKeys?: readonly string[];
  clock: () => Date;
  logger: Logger;
  /**
   * Checks a retention checkpoint's signature (the keyring opens it to its statement); without
   * it checkpoints are trusted as stored.
   */
  checkpointSigned?: (c: AuditCheckpoint) => Promise<boolean>;
}

/** The outcome of a chain verification. */
export interface ChainVerification {
  ok: boolean;
  entriesChecked: number;
  firstBrokenLink: BrokenLink | undefined;
  headHash: string;
  verifiedAt: Date;
}

/** Rows per page when streaming through a chain. */
const PAGE = 500;

/**
 * The audit trail: turns domain events into redacted, hash-chained entries (one chain per
 * tenant), and reads, exports and verifies them.
 */
export class AuditApplication {
  private readonly store: AuditStore;
  private readonly extraKeys: readonly string[];
  private readonly clock: () => Date;
  private readonly logger: Logger;
  private readonly checkpointSigned: ((c: AuditCheckpoint) => Promise<boolean>) | undefined;

  constructor(options: AuditApplicationOptions) {
    this.checkpointSigned = options.checkpointSigned;
    this.store = options.store;
    this.extraKeys = options.extraRedactKeys ?? [];
    this.clock = options.clock;
    this.logger = options.logger;
  }

  private redactObject(v: JsonObject | undefined): JsonObject | undefined {
    return v === undefined ? undefined : (redact(v, this.extraKeys) as JsonObject);
  }

  /** Names the actor from the keys this trail has seen issued. */
  private async resolveActor(uow: AuditUnitOfWork, hint: { keyId: string; kind?: AuditActor["kind"]; role?: string }): Promise<AuditActor> {
    if (hint.kind === "system") return { kind: "system", keyId: "", name: "nexus", role: "" };
    const known = hint.keyId ? await uow.actor(hint.keyId) : undefined;
    if (hint.kind === "anonymous") return { kind: "anonymous", keyId: hint.keyId, name: known?.name ?? "", role: "" };
    if (!known) return { kind: "unknown", keyId: hint.keyId, name: "", role: hint.role ?? "" };
    return { kind: known.kind, keyId: known.keyId, name: known.name, role: hint.role ?? known.role };
  }

  /** Keeps the key directory current (before the entry, so the issuing key names itself). */
  private async trackActors(uow: AuditUnitOfWork, e: AuditSourceEvent): Promise<void> {
    const p = (e.payload ?? {}) as Record<string, unknown>;
    const lower = (v: unknown, prefix: string) =>
      typeof v === "string" && v.startsWith(prefix) ? v.slice(prefix.length).toLowerCase() : "";
    if (e.type === "nexus.events.v1.ApiKeyIssued" && typeof p.keyId === "string") {
      await uow.saveActor({
        keyId: p.keyId,
        kind: p.kind === "PRINCIPAL_KIND_PLATFORM" ? "platform" : "tenant",
        name: typeof p.name === "string" ? p.name : "",
        role: lower(p.role, "ROLE_"),
        tenantId: typeof p.tenantId === "string" ? p.tenantId : "",
      });
    } else if (e.type === "nexus.events.v1.ApiKeyRoleChanged" && typeof p.keyId === "string") {
      await uow.setActorRole(p.keyId, lower(p.role, "ROLE_"));
    }
  }

  /**
   * Records one domain event in its tenant's chain (consumer transaction). Idempotent by
   * event id; events outside the taxonomy are ignored. Details are redacted before they are
   * hashed and stored, so the stored entry is exactly what the chain covers.
   */
  async record(uow: AuditUnitOfWork, e: AuditSourceEvent): Promise<AuditEntry | undefined> {
    await this.trackActors(uow, e);
    const t = taxonomyEntry(e);
    if (!t) return undefined;
    await uow.lockChain(t.tenantId);
    if (await uow.hasSourceEvent(e.eventId)) return undefined;
    const draft: AuditDraft = {
      tenantId: t.tenantId,
      occurredAt: e.occurredAt,
      eventType: t.eventType,
      actor: await this.resolveActor(uow, t.actor),
      action: t.action,
      resource: t.resource,
      outcome: t.outcome,
      requestId: t.requestId,
      correlationId: e.metadata.correlationId ?? "",
      before: this.redactObject(t.before),
      after: this.redactObject(t.after),
      metadata: this.redactObject(t.metadata),
      sourceEventId: e.eventId,
    };
    const entry = chainEntry(draft, randomUUID(), await uow.head(t.tenantId));
    await uow.append(entry);
    return entry;
  }

  /** One page, newest first, and the sequence to continue below (undefined: last page). */
  async list(
    q: AuditQuery,
    beforeSequence: number | undefined,
    pageSize: number,
  ): Promise<{ entries: AuditEntry[]; next: number | undefined }> {
    const rows = await this.store.listNewestFirst(q, beforeSequence, pageSize + 1);
    const entries = rows.slice(0, pageSize);
    const last = entries[entries.length - 1];
    return { entries, next: rows.length > pageSize && last ? last.sequence : undefined };
  }

  /** The matching entries oldest first, page by page (the export streams these). */
  async *export(q: AuditQuery, pageSize = PAGE): AsyncGenerator<AuditEntry[]> {
    let after = 0;
    for (;;) {
      const rows = await this.store.listOldestFirst(q, after, pageSize);
      if (rows.length === 0) return;
      yield rows;
      after = rows[rows.length - 1]!.sequence;
      if (rows.length < pageSize) return;
    }
  }

  /** Recomputes a chain from its first entry; reports the first broken link. */
  async verify(tenantId: string, signal?: AbortSignal): Promise<ChainVerification> {
    // After retention, the kept chain continues from the newest checkpoint: its last removed
    // sequence and hash, which the first kept entry's prev_hash must name.
    const checkpoint = await this.store.latestCheckpoint(tenantId);
    if (checkpoint && this.checkpointSigned && !(await this.checkpointSigned(checkpoint))) {
      const broken: BrokenLink = {
        sequence: checkpoint.sequence,
        eventId: "",
        expectedHash: "a checkpoint signed by the tenant's key",
        actualHash: checkpoint.hash,
        problem: "hash_mismatch",
      };
      this.logger.warn({ tenant_id: tenantId, broken_link: broken }, "audit retention checkpoint signature does not verify");
      return { ok: false, entriesChecked: 0, firstBrokenLink: broken, headHash: checkpoint.hash, verifiedAt: this.clock() };
    }
    const verifier = new ChainVerifier(checkpoint);
    let after = checkpoint?.sequence ?? 0;
    for (;;) {
      signal?.throwIfAborted();
      const rows = await this.store.chainPage(tenantId, after, PAGE);
      for (const e of rows) if (verifier.check(e)) break;
      if (verifier.firstBrokenLink || rows.length < PAGE) break;
      after = rows[rows.length - 1]!.sequence;
    }
    const broken = verifier.firstBrokenLink;
    if (broken) this.logger.warn({ tenant_id: tenantId, broken_link: broken }, "audit chain verification found a broken link");
    return {
      ok: !broken,
      entriesChecked: verifier.checked,
      firstBrokenLink: broken,
      headHash: verifier.headHash,
      verifiedAt: this.clock(),
    };
  }
}
