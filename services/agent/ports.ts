import type { JsonObject } from "@bufbuild/protobuf";
import type { Queryable, Tx } from "../kernel/db/ports.js";
import type { Passage } from "./providers/ports.js";
import type { MessageRecord, SessionRecord } from "./sessions/session-records.js";

/** Position of a session in the "most recently updated first" order (for paging). */
export interface SessionCursor {
  updatedAt: Date;
  sessionId: string;
}

/** One run's contribution to a session, stored in the run's final transaction. */
export interface TurnRecord {
  tenantId: string;
  sessionId: string;
  /** The run started the session: create it (else it must still exist). */
  newSession: boolean;
  corpusId: string;
  /** Title of a new session. */
  title: string;
  /** Who started a new session: the API key id and the user (empty for a machine key). */
  createdByKey?: string;
  createdByUser?: string;
  at: Date;
  /** The user's message, and the assistant's when the run completed. */
  messages: readonly MessageRecord[];
}

/** Sessions and messages (`agent` schema), always scoped by tenant. */
export interface SessionRepository {
  get(q: Queryable, tenantId: string, sessionId: string): Promise<SessionRecord | undefined>;
  /** The session's most recent `limit` messages, oldest first. */
  recentMessages(q: Queryable, tenantId: string, sessionId: string, limit: number): Promise<MessageRecord[]>;
  /** A page of the tenant's sessions, most recently updated first, strictly after `after`. */
  list(q: Queryable, tenantId: string, page: { corpusId?: string; after?: SessionCursor; limit: number }): Promise<SessionRecord[]>;
  /** Who started the session (key id, user id; empty when unknown), undefined when it does not exist. */
  owner(q: Queryable, tenantId: string, sessionId: string): Promise<{ keyId: string; userId: string } | undefined>;
  /** Deletes a session and its messages; false when it did not exist. */
  delete(tx: Tx, tenantId: string, sessionId: string): Promise<boolean>;
  /**
   * Stores a turn: creates the session or touches it (corpus, updated_at, message count) and
   * inserts the messages. Returns false, storing nothing, when a continued session was
   * deleted while the run was going on.
   */
  recordTurn(tx: Tx, turn: TurnRecord): Promise<boolean>;
}

/** How a call to another service is made on behalf of the run's caller. */
export interface PeerCall {
  /** The caller's credentials (`authorization`) and anything else to forward. */
  headers: Headers;
  signal: AbortSignal;
  timeoutMs?: number;
}

/** What retrieval found (passages best first). */
export interface RetrievalResult {
  passages: Passage[];
}

/** The retrieval service's Search, as the agent uses it. */
export interface Retriever {
  search(input: { corpusId: string; query: string; topK?: number }, call: PeerCall): Promise<RetrievalResult>;
}

/** A tool of a module's active version, as the model is told about it. */
export interface ToolDescription {
  tool: string;
  description: string;
  /** JSON Schema of the input (an object); absent: any object. */
  inputSchema?: JsonObject;
}

/** What a tool call returned. */
export interface ToolCallOutput {
  output: JsonObject;
  moduleVersion: string;
  cached: boolean;
  /** The marketplace listing the version was installed from ("" for the tenant's own module). */
  listingId?: string;
}

/**
 * The modules service's tools, on behalf of the caller (the caller's key travels with each
 * call, so the caller's tenant and permissions apply). Failures are the modules service's
 * errors (MODULE_TIMEOUT, MODULE_EGRESS_DENIED, ...).
 */
export interface ToolGateway {
  call(input: { module: string; tool: string; input: JsonObject }, call: PeerCall): Promise<ToolCallOutput>;
  /** The tools of a module's active version (MODULE_NOT_ACTIVE when it has none). */
  describe(module: string, call: PeerCall): Promise<ToolDescription[]>;
}

/** The model settings a corpus asks for (empty when it names none). */
export interface CorpusModelSettings {
  provider?: string;
  model?: string;
}

/** Where per-corpus model settings come from (the corpus's provider_config.agent section). */
export interface CorpusSettingsSource {
  /** Throws NOT_FOUND when the corpus does not exist for the caller's tenant. */
  modelSettings(tenantId: string, corpusId: string, call: PeerCall): Promise<CorpusModelSettings>;
}

/** One quota period's state, for response headers. */
export interface QuotaWindowState {
  period: "day" | "month";
  runsUsed: number;
  runsReserved: number;
  runsLimit?: number;
  runsRemaining?: number;
  resetsAt?: Date;
}

/** The outcome of a quota check that admitted the run. */
export type QuotaAdmission =
  | {
      kind: "reserved";
      reservationId: string;
      /** "allowed", "allowed_soft_cap" or "allowed_overage". */
      decision: string;
      windows: QuotaWindowState[];
    }
  | {
      /** Metering could not be asked and the installation admits runs anyway (NEXUS_AGENT_QUOTA_FAIL_OPEN). */
      kind: "unchecked";
      reason: string;
    };

/**
 * Metering's quota reservations. `check` throws RESOURCE_EXHAUSTED QUOTA_EXCEEDED (metadata
 * period, limit, used, remaining) when the run is refused, or the transport's error when
 * metering cannot be asked.
 */
export interface QuotaGate {
  check(input: { tenantId: string; requestId: string }, call: PeerCall): Promise<QuotaAdmission & { kind: "reserved" }>;
  commit(reservationId: string, call: PeerCall): Promise<void>;
  release(reservationId: string, reason: string, call: PeerCall): Promise<void>;
}
