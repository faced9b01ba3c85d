import { create } from "@bufbuild/protobuf";
import { Code, type ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  type AgentService,
  type CancelRunRequest,
  CancelRunResponseSchema,
  type DeleteSessionRequest,
  DeleteSessionResponseSchema,
  type GetSessionRequest,
  GetSessionResponseSchema,
  type ListSessionsRequest,
  ListSessionsResponseSchema,
  type RunRequest,
  type RunResponse,
  type WatchRunRequest,
} from "../../gen/nexus/agent/v1/agent_service_pb.js";
import { RunStartedSchema } from "../../gen/nexus/events/v1/agent_events_pb.js";
import { tenantPrincipal } from "../kernel/authz/tenant-scope.js";
import { REQUEST_ID_HEADER, requestMetaKey } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import { readStream } from "../kernel/events/event-store.js";
import { foregroundWork } from "../kernel/events/foreground.js";
import { payloadOf } from "../kernel/events/protobuf-event.js";
import { assertNoLegalHold } from "../kernel/governance/index.js";
import { newRequestId } from "../kernel/interceptors/request-id.js";
import { keysetPosition, pageTokens } from "../kernel/paging/index.js";
import type { Bulkhead } from "./run/bulkhead.js";
import { ENDED, type RunCancellation } from "./run/run-cancellation.js";
import { runStreamId } from "./run/run-events.js";
import { type RunDependencies, RunExecution } from "./run/run-execution.js";
import type { RunWatchRelay } from "./run/run-watch-relay.js";
import { messageMessage, sessionMessage } from "./session-messages.js";
import { sessionHoldSubjects } from "./subject-data.js";

/** Sessions and runs are tenant content: what a platform key is told. */
const PLATFORM_KEY_REFUSAL = "platform keys cannot run agents or read sessions; use a key of the tenant";
/** ListSessions page tokens: the last session's (updated_at, id), bound to the corpus_id filter. */
const sessionPageTokens = pageTokens(keysetPosition("updatedAt", "sessionId"));

/** Messages GetSession returns when the request says 0. */
export const DEFAULT_MESSAGE_LIMIT = 100;
/** Sessions per ListSessions page when the request says 0. */
export const DEFAULT_PAGE_SIZE = 50;

/** What the handler needs besides the run dependencies. */
export interface AgentHandlerDependencies extends RunDependencies {
  bulkhead: Bulkhead;
  /** CancelRun across replicas. */
  cancellation: RunCancellation;
  /** WatchRun of runs held by other replicas (NATS bus only). */
  watchRelay?: RunWatchRelay;
  /** Told about every run that started, so shutdown can wait for it to finish storing. */
  track?: (finished: Promise<void>) => void;
}

/**
 * The id of a run: the key of its quota reservation, its metering record, its event stream
 * and CancelRun. Always chosen by the server — a client that could choose it could reuse one
 * to get past the quota (metering's reservation and usage record are idempotent by it). The
 * request id is used as is when the server generated it (the client sent no `x-request-id`,
 * so `accepted.request_id` equals the response's `x-request-id`); a client's own
 * `x-request-id` stays a correlation id only (logs, event metadata) and the run gets a fresh id.
 */
export function serverRunId(ctx: Pick<HandlerContext, "requestHeader">, requestId: string): string {
  const sent = ctx.requestHeader.get(REQUEST_ID_HEADER)?.trim();
  return sent === requestId ? newRequestId() : requestId;
}

/**
 * `nexus.agent.v1.AgentService`: Run (see RunExecution), CancelRun (any replica's runs, see
 * RunCancellation), and the tenant's sessions. Every call acts for the caller's tenant only.
 */
export class AgentHandler implements ServiceImpl<typeof AgentService> {
  constructor(private readonly deps: AgentHandlerDependencies) {}

  async *run(request: RunRequest, ctx: HandlerContext): AsyncGenerator<RunResponse> {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const requestId = ctx.values.get(requestMetaKey)?.requestId ?? newRequestId();
    const runId = serverRunId(ctx, requestId);
    let release: () => void;
    try {
      release = this.deps.bulkhead.enter();
    } catch (err) {
      this.deps.metrics.refused.inc({ reason: "SERVICE_BUSY" });
      throw err;
    }
    // Until its first token is written, the run is this process's foreground work: background
    // event consumers hold their rounds (services/kernel/events/foreground.ts).
    const endForeground = foregroundWork.begin();
    let run: RunExecution | undefined;
    let started = false;
    try {
      run = new RunExecution(this.deps, {
        request,
        principal,
        runId,
        requestId,
        signal: ctx.signal,
        requestHeader: ctx.requestHeader,
        responseHeader: ctx.responseHeader,
        timeoutMs: () => ctx.timeoutMs(),
      });
      await run.admit();
      let finished!: () => void;
      this.deps.track?.(new Promise<void>((resolve) => (finished = resolve)));
      run.start(() => {
        release();
        finished();
      });
      started = true;
      for await (const response of run.events) {
        yield response;
        // Resumed: the transport has written the event.
        if (response.event.case === "tokenDelta") {
          endForeground();
          run.firstTokenSent();
        }
      }
    } finally {
      endForeground();
      run?.firstTokenSent();
      if (!started) release();
    }
  }

  /**
   * Reattaches to a run: its events after `after_seq`, then live ones until `done`. The run
   * must be the caller's tenant's (a run of another tenant is not found, like an unknown id).
   * A watcher holds a resumable run alive (its grace period stops while one is attached).
   */
  async *watchRun(request: WatchRunRequest, ctx: HandlerContext): AsyncGenerator<RunResponse> {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const run = this.deps.journal?.get(principal.tenantId, request.requestId);
    if (run === undefined) {
      yield* this.watchElsewhere(principal.tenantId, request, ctx);
      return;
    }
    if (request.afterSeq > run.events.lastSeq) {
      throw domainError("INVALID_ARGUMENT", `after_seq ${request.afterSeq} is past the run's last event (${run.events.lastSeq})`, {
        request_id: request.requestId,
      });
    }
    const leave = run.attachWatcher();
    ctx.signal.addEventListener("abort", leave, { once: true });
    try {
      yield* run.events.follow(request.afterSeq, ctx.signal);
      // Left early (deadline, hang-up): the call ends with that reason, not as a finished stream.
      if (ctx.signal.aborted) throw ctx.signal.reason;
    } finally {
      ctx.signal.removeEventListener("abort", leave);
      leave();
    }
  }

  /**
   * WatchRun of a run this replica does not hold: the run's stored events say whether it
   * exists for this tenant (its stream id is tenant-scoped), then the replica holding it
   * streams its events over core NATS (RunWatchRelay); the owner's tenant is checked again
   * here. No owner answering: RUN_ENDED or RUN_ON_OTHER_REPLICA as before.
   */
  private async *watchElsewhere(tenantId: string, request: WatchRunRequest, ctx: HandlerContext): AsyncGenerator<RunResponse> {
    const refusal = await this.notHere(tenantId, request.requestId);
    const relay = this.deps.watchRelay;
    if (relay === undefined || refusal.code === Code.NotFound) throw refusal;
    const asked = await relay.ask(tenantId, request.requestId, request.afterSeq, ctx.signal, 3 * this.deps.settings.heartbeatMs);
    if (asked === undefined) throw refusal;
    const { answer, events } = asked;
    if (answer.tenantId !== tenantId || (!answer.ok && answer.reason === "NOT_FOUND")) {
      throw domainError("NOT_FOUND", `run ${request.requestId} not found (or its events are no longer held)`, {
        request_id: request.requestId,
      });
    }
    if (!answer.ok || events === undefined) {
      throw domainError("INVALID_ARGUMENT", `after_seq ${request.afterSeq} is past the run's last event (${answer.lastSeq})`, {
        request_id: request.requestId,
      });
    }
    try {
      yield* events;
    } catch (err) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      throw domainError(
        "RUN_ON_OTHER_REPLICA",
        `run ${request.requestId}: ${(err as Error).message}; reattach after the last seq received`,
        { request_id: request.requestId, session_id: answer.sessionId },
        { retryAfterMs: 500 },
      );
    }
    if (ctx.signal.aborted) throw ctx.signal.reason;
  }

  /** Why WatchRun cannot follow a run this replica does not hold, from the run's stored events. */
  private async notHere(tenantId: string, runId: string): Promise<ConnectError> {
    const events = await readStream(this.deps.db, runStreamId(tenantId, runId));
    const started = events.find((e) => e.type === RunStartedSchema.typeName);
    if (events.length === 0 || started === undefined) {
      return domainError("NOT_FOUND", `run ${runId} not found (or its events are no longer held)`, { request_id: runId });
    }
    const sessionId = payloadOf(RunStartedSchema, started).sessionId;
    if (events.some((e) => ENDED.has(e.type))) {
      return domainError("RUN_ENDED", `run ${runId} has ended; its answer is in session ${sessionId} (GetSession)`, {
        request_id: runId,
        session_id: sessionId,
      });
    }
    return domainError(
      "RUN_ON_OTHER_REPLICA",
      `run ${runId} is served by another agent replica; retry (the ingress routes a retry to another replica)`,
      { request_id: runId, session_id: sessionId },
      { retryAfterMs: 500 },
    );
  }

  async cancelRun(request: CancelRunRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    return create(CancelRunResponseSchema, { cancelled: await this.deps.cancellation.cancel(principal, request.requestId) });
  }

  async getSession(request: GetSessionRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const { db, sessions } = this.deps;
    const session = await sessions.get(db, principal.tenantId, request.sessionId);
    if (session === undefined) throw domainError("NOT_FOUND", `session ${request.sessionId} not found`, { session_id: request.sessionId });
    const messages = await sessions.recentMessages(
      db,
      principal.tenantId,
      request.sessionId,
      request.messageLimit || DEFAULT_MESSAGE_LIMIT,
    );
    return create(GetSessionResponseSchema, { session: sessionMessage(session), messages: messages.map(messageMessage) });
  }

  async listSessions(request: ListSessionsRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const after = sessionPageTokens.decode(request.pageToken, request.corpusId);
    const limit = request.pageSize || DEFAULT_PAGE_SIZE;
    const rows = await this.deps.sessions.list(this.deps.db, principal.tenantId, {
      ...(request.corpusId ? { corpusId: request.corpusId } : {}),
      ...(after ? { after } : {}),
      limit: limit + 1,
    });
    const page = rows.slice(0, limit);
    const last = page.at(-1);
    return create(ListSessionsResponseSchema, {
      sessions: page.map(sessionMessage),
      nextPageToken:
        rows.length > limit && last
          ? sessionPageTokens.encode({ updatedAt: last.updatedAt, sessionId: last.sessionId }, request.corpusId)
          : "",
    });
  }

  async deleteSession(request: DeleteSessionRequest, ctx: HandlerContext) {
    const principal = tenantPrincipal(ctx, PLATFORM_KEY_REFUSAL);
    const deleted = await this.deps.db.transaction(async (tx) => {
      // A legal hold on the tenant, the session, or the key or user that started it supersedes
      // the request (LEGAL_HOLD_ACTIVE).
      const owner = await this.deps.sessions.owner(tx, principal.tenantId, request.sessionId);
      await assertNoLegalHold(tx, principal.tenantId, sessionHoldSubjects(request.sessionId, owner), `delete session ${request.sessionId}`);
      return this.deps.sessions.delete(tx, principal.tenantId, request.sessionId);
    });
    if (!deleted) throw domainError("NOT_FOUND", `session ${request.sessionId} not found`, { session_id: request.sessionId });
    return create(DeleteSessionResponseSchema, {});
  }
}
