import { randomBytes } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { SpanKind, SpanStatusCode, context, trace, type Context, type Span } from "@opentelemetry/api";
import type { Logger } from "pino";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import {
  MessageFinalSchema,
  RetrievedChunkSchema,
  RunAcceptedSchema,
  RunDoneSchema,
  RunRetrievalSchema,
  RunStatus,
  TokenDeltaSchema,
  type RunRequest,
} from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { CitationSchema } from "../../../gen/nexus/agent/v1/session_pb.js";
import type { TenantPrincipal } from "../../kernel/context.js";
import type { Database } from "../../kernel/db/ports.js";
import { domainError, errorMetadata, errorReason, isReason } from "../../kernel/errors.js";
import { appendToStream } from "../../kernel/events/event-store.js";
import { letWritesOut } from "../../kernel/events/foreground.js";
import type { NewEvent } from "../../kernel/events/ports.js";
import type { CorpusModelSettings, CorpusSettingsSource, PeerCall, QuotaAdmission, QuotaGate, Retriever, SessionRepository } from "../ports.js";
import type { GenerationChunk, HistoryMessage, ModelProvider, ModelUsage, Passage } from "../providers/ports.js";
import type { ModelSelection, ProviderRegistry } from "../providers/provider-registry.js";
import type { CircuitBreaker } from "../../kernel/resilience/index.js";
import { boundedHistory, type HistoryBounds } from "../sessions/bounded-history.js";
import { sessionTitle, type MessageRecord, type StoredCitation } from "../sessions/session-records.js";
import { GEN_AI, GEN_AI_OPERATION } from "../telemetry/gen-ai-attributes.js";
import type { RunMetrics } from "../telemetry/run-metrics.js";
import type { ActiveRuns } from "./active-runs.js";
import { CpuMeter } from "./cpu-meter.js";
import { quotaHeaders, quotaRefusal } from "./quota-headers.js";
import { RunEventChannel } from "./run-event-channel.js";
import { grpcCodeName, isDependencyFailure, publicError, runErrorEvent } from "./run-errors.js";
import { runCancelled, runCompleted, runFailed, runStarted, runStreamId, type RunIdentity, type RunTimingFigures, type RunUsageFigures } from "./run-events.js";
import { advance, INITIAL_RUN_STATE, type RunState, type RunStep, type StepResult } from "./run-state.js";

/** Instrumentation scope of the agent's run spans. */
export const AGENT_TRACER = "nexus.agent";

/** A client that goes away this close to its deadline is treated as having hit it. */
const DEADLINE_SLACK_MS = 250;

/** Longest wait of the persist step for the first token to be written (a client not reading). */
const FIRST_TOKEN_WRITE_WAIT_MS = 100;

/**
 * RunStarted is stored once the first token is written, and at the latest this long after
 * acceptance (a slow model): other replicas find the run by it (CancelRun).
 */
export const RUN_STARTED_LATEST_MS = 100;

/** Run settings from the configuration. */
export interface RunSettings {
  /** NEXUS_AGENT_HEARTBEAT_MS. */
  heartbeatMs: number;
  /** NEXUS_AGENT_HISTORY_TURNS and NEXUS_AGENT_HISTORY_CHARS. */
  history: HistoryBounds;
  /** NEXUS_AGENT_RETRIEVAL_TIMEOUT_MS. */
  retrievalTimeoutMs: number;
  /** Timeout of the small calls around a run (quota, corpus settings, settling the quota). */
  peerTimeoutMs: number;
  /** NEXUS_AGENT_QUOTA_FAIL_OPEN. */
  quotaFailOpen: boolean;
}

/** The circuit breakers of a replica: one for retrieval, one per remote model provider. */
export interface DependencyBreakers {
  retrieval: CircuitBreaker;
  model(provider: ModelProvider): CircuitBreaker;
}

/** Everything a run works with (one set per replica). */
export interface RunDependencies {
  db: Database;
  sessions: SessionRepository;
  retriever: Retriever;
  quota: QuotaGate;
  corpusSettings: CorpusSettingsSource;
  providers: ProviderRegistry;
  breakers: DependencyBreakers;
  activeRuns: ActiveRuns;
  metrics: RunMetrics;
  settings: RunSettings;
  clock: () => Date;
  logger: Logger;
}

/** One Run call as the handler received it. */
export interface RunInput {
  request: RunRequest;
  principal: TenantPrincipal;
  requestId: string;
  /** The call's signal: client cancel, deadline, server shutdown. */
  signal: AbortSignal;
  requestHeader: Headers;
  /** Response headers, still unsent until the first event (quota state goes here). */
  responseHeader: Headers;
  /** Milliseconds left before the call's deadline, if it has one. */
  timeoutMs: () => number | undefined;
}

/** A fresh id with a readable prefix, e.g. `ses_3f9a…`. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString("hex")}`;
}

function codePointSlice(text: string, start: number, end: number): string {
  return [...text].slice(start, end).join("");
}

/**
 * One run, driven through the state machine (run-state.ts): `admit()` does the steps before
 * acceptance (admission, quota check) and throws their refusals; `start()` sends `accepted`
 * and drives retrieve → generate → persist → done in the background, pushing events into
 * `events`, which the RPC handler streams. Every step is an OpenTelemetry span under one
 * `invoke_agent` span; the model call follows the GenAI conventions (`chat <model>`).
 *
 * The run owns an AbortController linked to the call's signal and to CancelRun, passed to
 * the retrieval and model calls, so a cancel aborts them at once. A run always finishes its
 * persist step and its last event, even when its client is gone.
 */
export class RunExecution {
  /** The run's events, with seq and heartbeats. */
  readonly events: RunEventChannel;
  private state: RunState = INITIAL_RUN_STATE;
  private readonly controller = new AbortController();
  private byCancelRun = false;
  private readonly cpu = new CpuMeter();
  private readonly tracer = trace.getTracer(AGENT_TRACER);
  private readonly runSpan: Span;
  private readonly runContext: Context;
  private readonly log: Logger;
  private readonly question: string;
  private readonly corpusId: string;

  private sessionId = "";
  private newSession = true;
  private history: HistoryMessage[] = [];
  private selection: ModelSelection | undefined;
  private admission: QuotaAdmission | undefined;
  private startedAt = new Date(0);
  private acceptedAt = 0;
  private passages: Passage[] = [];
  private answer = "";
  private citations: StoredCitation[] = [];
  private usage: ModelUsage | undefined;
  private finishReason = "";
  private toolCalls = 0;
  private retrievalMs = 0;
  private generationMs = 0;
  private timeToFirstTokenMs: number | undefined;
  private failure: ConnectError | undefined;
  private runStartedAppend: Promise<void> | undefined;
  /** The Search call, started during the quota check (see checkQuota). */
  private retrieval: Promise<{ kind: "ok"; passages: Passage[] } | { kind: "failed"; error: unknown }> | undefined;
  /** Aborts a prefetched Search when the run is refused. */
  private readonly prefetch = new AbortController();
  private unregister: (() => void) | undefined;
  private readonly onCallAbort: () => void;
  private markFirstTokenSent: () => void = () => {};
  /** Resolves once the handler wrote the first token (or the stream ended). */
  private readonly firstTokenOut = new Promise<void>((resolve) => (this.markFirstTokenSent = resolve));

  constructor(
    private readonly deps: RunDependencies,
    private readonly input: RunInput,
  ) {
    this.events = new RunEventChannel({ heartbeatMs: deps.settings.heartbeatMs, clock: deps.clock });
    this.question = input.request.message;
    this.corpusId = input.request.corpusId;
    this.log = deps.logger.child({ request_id: input.requestId, tenant_id: input.principal.tenantId });
    this.onCallAbort = () => {
      if (this.controller.signal.aborted) return;
      // A client whose deadline passed hangs up a moment before our own deadline timer fires:
      // count a hang-up that close to the deadline as the deadline.
      const left = input.timeoutMs();
      const reason: unknown =
        left !== undefined && left <= DEADLINE_SLACK_MS ? new ConnectError("the operation timed out", Code.DeadlineExceeded) : input.signal.reason;
      this.controller.abort(reason);
    };
    if (input.signal.aborted) this.onCallAbort();
    else input.signal.addEventListener("abort", this.onCallAbort, { once: true });
    this.runSpan = this.tracer.startSpan("invoke_agent nexus", {
      kind: SpanKind.INTERNAL,
      attributes: {
        [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.INVOKE_AGENT,
        [GEN_AI.AGENT_NAME]: "nexus",
        [GEN_AI.DATA_SOURCE_ID]: this.corpusId,
        "nexus.request_id": input.requestId,
        "nexus.tenant_id": input.principal.tenantId,
      },
    });
    this.runContext = trace.setSpan(context.active(), this.runSpan);
  }

  /** The run's signal (aborted by client cancel, deadline, shutdown or CancelRun). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Where the run is in its state machine. */
  get current(): RunState {
    return this.state;
  }

  /**
   * The steps before acceptance: admission (registration, session and history, provider and
   * model within the plan) and the quota check (quota state into the response headers).
   * Throws the refusal as an RPC error; nothing is stored then.
   */
  async admit(): Promise<void> {
    for (const step of ["accepted", "quota_check"] as const) {
      try {
        await this.inStep(step, step === "accepted" ? () => this.accept() : () => this.checkQuota());
        this.state = advance(this.state, { kind: "ok" });
      } catch (err) {
        this.state = advance(this.state, { kind: "failed" });
        const refusal = this.controller.signal.aborted ? this.abortError() : publicError(err, this.input.requestId);
        this.prefetch.abort(refusal);
        this.deps.metrics.refused.inc({ reason: refusalReason(refusal) });
        this.runSpan.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(refusal.code));
        this.runSpan.setStatus({ code: SpanStatusCode.ERROR, message: refusal.rawMessage });
        this.runSpan.end();
        this.cleanup();
        if (this.admission?.kind === "reserved") this.settleQuota("release", "refused");
        throw refusal;
      }
    }
  }

  /**
   * Sends `accepted` and drives the rest of the run in the background; `onFinished` runs
   * after the last event (the handler frees the bulkhead slot there).
   */
  start(onFinished: () => void): void {
    const selection = this.requireSelection();
    this.acceptedAt = performance.now();
    this.startedAt = this.deps.clock();
    this.events.push({
      case: "accepted",
      value: create(RunAcceptedSchema, {
        requestId: this.input.requestId,
        sessionId: this.sessionId,
        corpusId: this.corpusId,
        provider: selection.provider.name,
        model: selection.model,
      }),
    });
    this.events.startHeartbeats();
    this.deps.metrics.inFlight.inc();
    void context.with(this.runContext, () => this.drive()).finally(() => {
      this.deps.metrics.inFlight.dec();
      onFinished();
    });
  }

  /** The handler wrote the first token to the client, or the stream ended (idempotent). */
  firstTokenSent(): void {
    this.markFirstTokenSent();
  }

  /** Aborts the run on behalf of CancelRun. */
  cancel(): void {
    if (this.controller.signal.aborted) return;
    this.byCancelRun = true;
    this.controller.abort(domainError("CANCELLED", "the run was cancelled with CancelRun"));
  }

  // ---------------------------------------------------------------- steps

  private async accept(): Promise<void> {
    const { request, principal, requestId } = this.input;
    this.unregister = this.deps.activeRuns.register({ tenantId: principal.tenantId, requestId, cancel: () => this.cancel() });
    const [, corpus] = await Promise.all([this.loadSession(request.sessionId), this.corpusModelSettings()]);
    const options = request.options;
    this.selection = this.cpu.measure(() =>
      this.deps.providers.select({
        requestedProvider: options?.provider ?? "",
        requestedModel: options?.model ?? "",
        corpus,
        principal,
      }),
    );
    this.runSpan.setAttributes({
      [GEN_AI.CONVERSATION_ID]: this.sessionId,
      [GEN_AI.PROVIDER_NAME]: this.selection.provider.telemetryName,
      [GEN_AI.REQUEST_MODEL]: this.selection.model,
    });
  }

  private async loadSession(sessionId: string): Promise<void> {
    const { principal } = this.input;
    if (sessionId === "") {
      this.sessionId = newId("ses");
      this.newSession = true;
      return;
    }
    const { db, sessions, settings } = this.deps;
    const found = await sessions.get(db, principal.tenantId, sessionId);
    if (found === undefined) throw domainError("NOT_FOUND", `session ${sessionId} not found`, { session_id: sessionId });
    this.sessionId = found.sessionId;
    this.newSession = false;
    if (settings.history.turns === 0 || settings.history.chars === 0) return;
    const recent = await sessions.recentMessages(db, principal.tenantId, sessionId, settings.history.turns * 2);
    this.history = this.cpu.measure(() => boundedHistory(recent, settings.history));
  }

  /**
   * The corpus's model settings. A missing corpus or a refused caller fails the run before
   * acceptance; when retrieval is merely unavailable the installation defaults are used (the
   * retrieve step then reports the outage as the run's error).
   */
  private async corpusModelSettings(): Promise<CorpusModelSettings> {
    const { breakers, corpusSettings, settings } = this.deps;
    if (breakers.retrieval.state === "open") return {};
    try {
      return await corpusSettings.modelSettings(this.input.principal.tenantId, this.corpusId, this.peerCall(settings.peerTimeoutMs));
    } catch (err) {
      if (this.controller.signal.aborted || !isDependencyFailure(err)) throw err;
      this.log.warn({ err }, "could not read the corpus's model settings; using the installation defaults");
      return {};
    }
  }

  private async checkQuota(): Promise<void> {
    const { quota, settings, metrics } = this.deps;
    const { principal, requestId, responseHeader } = this.input;
    // Retrieval does not depend on the quota: start it now so the two calls overlap (time to
    // first token is then max(quota, search) rather than their sum). A refused run aborts it.
    this.startRetrieval();
    let admission: QuotaAdmission;
    try {
      admission = await quota.check({ tenantId: principal.tenantId, requestId }, this.peerCall(settings.peerTimeoutMs));
    } catch (err) {
      if (isReason(err, "QUOTA_EXCEEDED")) throw quotaRefusal(err as ConnectError);
      if (this.controller.signal.aborted || !isDependencyFailure(err)) throw err;
      if (!settings.quotaFailOpen) {
        throw domainError(
          "DEPENDENCY_UNAVAILABLE",
          "the metering service could not be reached to check the quota; the run was not started",
          { dependency: "metering" },
          { cause: err, retryAfterMs: 1000 },
        );
      }
      this.log.warn({ err }, "metering could not be reached: run admitted without a quota check (NEXUS_AGENT_QUOTA_FAIL_OPEN)");
      metrics.quotaUnchecked.inc();
      admission = { kind: "unchecked", reason: ConnectError.from(err).rawMessage };
    }
    this.admission = admission;
    for (const [k, v] of quotaHeaders(admission)) responseHeader.set(k, v);
  }

  /** Starts the Search call once (a GenAI `retrieval <corpus>` span of its own). */
  private startRetrieval(): void {
    this.retrieval ??= context.with(this.runContext, () =>
      this.searchPassages().then(
        (passages) => ({ kind: "ok" as const, passages }),
        (error: unknown) => ({ kind: "failed" as const, error }),
      ),
    );
  }

  private async searchPassages(): Promise<Passage[]> {
    const { breakers, retriever, settings } = this.deps;
    const permit = breakers.retrieval.acquire();
    const span = this.tracer.startSpan(
      `${GEN_AI_OPERATION.RETRIEVAL} ${this.corpusId}`,
      { kind: SpanKind.CLIENT, attributes: { [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.RETRIEVAL, [GEN_AI.DATA_SOURCE_ID]: this.corpusId } },
      this.runContext,
    );
    const started = performance.now();
    const timeoutMs = this.boundedTimeout(settings.retrievalTimeoutMs);
    this.toolCalls += 1;
    try {
      const call: PeerCall = {
        headers: this.forwardHeaders(),
        signal: AbortSignal.any([this.controller.signal, this.prefetch.signal]),
        timeoutMs,
      };
      const topK = this.input.request.topK;
      const result = await context.with(trace.setSpan(this.runContext, span), () =>
        retriever.search({ corpusId: this.corpusId, query: this.question, ...(topK !== undefined ? { topK } : {}) }, call),
      );
      permit.succeed();
      span.setAttribute("nexus.retrieved_chunks", result.passages.length);
      return result.passages;
    } catch (err) {
      if (this.controller.signal.aborted || this.prefetch.signal.aborted) {
        permit.release();
        throw this.controller.signal.aborted ? this.abortError() : err;
      }
      if (isDependencyFailure(err)) permit.fail();
      else permit.release();
      const failure = retrievalError(err, timeoutMs);
      const ce = ConnectError.from(failure);
      span.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(ce.code));
      span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      throw failure;
    } finally {
      this.retrievalMs = performance.now() - started;
      span.end();
    }
  }

  private async retrieve(): Promise<void> {
    this.startRetrieval();
    const outcome = await this.retrieval!;
    if (outcome.kind === "failed") throw outcome.error;
    this.passages = outcome.passages;
    this.events.push({
      case: "retrieval",
      value: create(RunRetrievalSchema, {
        hits: this.passages.map((p) =>
          create(RetrievedChunkSchema, {
            documentId: p.documentId,
            chunkOrdinal: p.chunkOrdinal,
            charStart: p.charStart,
            charEnd: p.charEnd,
            score: p.score,
          }),
        ),
      }),
    });
  }

  private async generate(): Promise<void> {
    const { provider, model } = this.requireSelection();
    const options = this.input.request.options;
    const permit = provider.remote ? this.deps.breakers.model(provider).acquire() : undefined;
    const attributes: Record<string, string | number | boolean> = {
      [GEN_AI.OPERATION_NAME]: GEN_AI_OPERATION.CHAT,
      [GEN_AI.PROVIDER_NAME]: provider.telemetryName,
      [GEN_AI.SYSTEM]: provider.telemetryName,
      [GEN_AI.REQUEST_MODEL]: model,
      [GEN_AI.REQUEST_STREAM]: true,
      [GEN_AI.CONVERSATION_ID]: this.sessionId,
    };
    if (options?.temperature !== undefined) attributes[GEN_AI.REQUEST_TEMPERATURE] = options.temperature;
    if (options?.maxTokens !== undefined) attributes[GEN_AI.REQUEST_MAX_TOKENS] = options.maxTokens;
    const span = this.tracer.startSpan(`${GEN_AI_OPERATION.CHAT} ${model}`, { kind: provider.remote ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes });
    const started = performance.now();
    let end: Extract<GenerationChunk, { kind: "end" }> | undefined;
    try {
      if (this.controller.signal.aborted) throw this.controller.signal.reason;
      const stream = provider.generate({
        question: this.question,
        history: this.history,
        passages: this.passages,
        model,
        ...(options?.temperature !== undefined ? { temperature: options.temperature } : {}),
        ...(options?.maxTokens !== undefined ? { maxTokens: options.maxTokens } : {}),
        signal: this.controller.signal,
        cpu: this.cpu,
      });
      for await (const chunk of stream) {
        if (chunk.kind === "end") {
          end = chunk;
          continue;
        }
        this.answer += chunk.text;
        this.cpu.measure(() => this.events.push({ case: "tokenDelta", value: create(TokenDeltaSchema, { text: chunk.text }) }));
        if (this.timeToFirstTokenMs === undefined) {
          this.timeToFirstTokenMs = performance.now() - this.acceptedAt;
          span.setAttribute(GEN_AI.RESPONSE_TIME_TO_FIRST_CHUNK, (performance.now() - started) / 1000);
          this.deps.metrics.timeToFirstToken.observe({ provider: provider.name }, this.timeToFirstTokenMs / 1000);
          // Let the first token go out before the rest is framed: a local provider has its whole
          // answer at once.
          await letWritesOut();
        }
      }
      if (end === undefined) throw domainError("DEPENDENCY_UNAVAILABLE", `the ${provider.name} provider ended without finishing the answer`, { provider: provider.name });
      permit?.succeed();
    } catch (err) {
      const failure = this.controller.signal.aborted ? this.abortError() : err;
      if (this.controller.signal.aborted) permit?.release();
      else if (isDependencyFailure(err)) permit?.fail();
      else permit?.release();
      const ce = ConnectError.from(failure);
      span.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(ce.code));
      if (ce.code !== Code.Canceled) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      span.end();
      throw failure;
    } finally {
      this.generationMs = performance.now() - started;
    }
    this.usage = end.usage;
    this.finishReason = end.finishReason;
    const passages = this.passages;
    this.citations = this.cpu.measure(() =>
      end.citations.flatMap((c): StoredCitation[] => {
        const p = passages[c.passage];
        if (p === undefined) return [];
        return [
          {
            documentId: p.documentId,
            chunkOrdinal: p.chunkOrdinal,
            charStart: p.charStart + c.start,
            charEnd: p.charStart + c.end,
            score: p.score,
            filename: p.filename,
            quote: codePointSlice(p.text, c.start, c.end),
          },
        ];
      }),
    );
    span.setAttributes({
      [GEN_AI.RESPONSE_MODEL]: end.responseModel ?? model,
      [GEN_AI.RESPONSE_FINISH_REASONS]: [end.finishReason],
      [GEN_AI.USAGE_INPUT_TOKENS]: end.usage.inputTokens,
      [GEN_AI.USAGE_OUTPUT_TOKENS]: end.usage.outputTokens,
      "nexus.token_counts_estimated": end.usage.estimated,
    });
    span.end();
  }

  /**
   * Stores the turn and the run's outcome event in one transaction: a completed run its
   * question and answer with RunCompleted, a failed or cancelled one only the question with
   * RunFailed or RunCancelled. Then, for a completed run, sends `message_final`.
   */
  private async persist(): Promise<void> {
    // Storing the turn is not needed for the first token: let it reach the client first (on
    // PGlite the transaction below would hold the event loop, and with it the token's write).
    if (this.timeToFirstTokenMs !== undefined) await this.firstTokenWritten(FIRST_TOKEN_WRITE_WAIT_MS);
    await this.recordRunStarted();
    const { db, sessions, clock } = this.deps;
    const { principal, requestId } = this.input;
    const at = clock();
    const outcome = this.state.outcome;
    const user: MessageRecord = {
      messageId: newId("msg"),
      sessionId: this.sessionId,
      role: "user",
      text: this.question,
      citations: [],
      requestId,
      createdAt: this.startedAt,
    };
    const assistant: MessageRecord | undefined =
      outcome === "running"
        ? { messageId: newId("msg"), sessionId: this.sessionId, role: "assistant", text: this.answer, citations: this.citations, requestId, createdAt: at }
        : undefined;
    const event = this.cpu.measure(() => this.outcomeEvent(at));
    const title = sessionTitle(this.question);
    const stored = await db.transaction(async (tx) => {
      const kept = await sessions.recordTurn(tx, {
        tenantId: principal.tenantId,
        sessionId: this.sessionId,
        newSession: this.newSession,
        corpusId: this.corpusId,
        title,
        at,
        messages: assistant ? [user, assistant] : [user],
      });
      await appendToStream(tx, runStreamId(principal.tenantId, requestId), "any", [event], {
        metadata: { tenantId: principal.tenantId, actor: principal.keyId },
      });
      return kept;
    });
    if (!stored) this.log.info({ session_id: this.sessionId }, "the session was deleted during the run; its turn was not stored");
    if (assistant === undefined) return;
    this.events.push({
      case: "messageFinal",
      value: create(MessageFinalSchema, {
        messageId: stored ? assistant.messageId : "",
        text: this.answer,
        citations: this.citations.map((c) => create(CitationSchema, c)),
        inputTokens: BigInt(Math.round(this.usage?.inputTokens ?? 0)),
        outputTokens: BigInt(Math.round(this.usage?.outputTokens ?? 0)),
        finishReason: this.finishReason,
      }),
    });
  }

  // ---------------------------------------------------------------- driving

  private async drive(): Promise<void> {
    // Not before the first token: storing it would compete with the run's own retrieval and
    // first token (on PGlite for the event loop itself). Persist records it at the latest.
    void this.firstTokenWritten(RUN_STARTED_LATEST_MS).then(() => this.recordRunStarted());
    while (this.state.step !== "done") {
      const step = this.state.step;
      let result: StepResult;
      try {
        if (step !== "persist" && this.controller.signal.aborted) throw this.abortError();
        switch (step) {
          case "retrieve":
            await this.inStep(step, () => this.retrieve());
            break;
          case "generate":
            await this.inStep(step, () => this.generate());
            break;
          case "persist":
            await this.inStep(step, () => this.persist());
            break;
          default:
            throw new Error(`step ${step} cannot run after acceptance`);
        }
        result = { kind: "ok" };
      } catch (err) {
        result = this.failed(err, step);
      }
      this.state = advance(this.state, result);
    }
    this.finish();
  }

  /** Records a failed step: the public error (sent as `error` right before `done`) and the step result. */
  private failed(err: unknown, step: RunStep): StepResult {
    if (step === "persist" && this.state.outcome !== "running") {
      // The failure or cancellation was already reported; storing its record failed too.
      this.log.error({ err }, "could not store the failed run's question and event");
      return { kind: "failed" };
    }
    const aborted = this.controller.signal.aborted && step !== "persist";
    const error = aborted ? this.abortError() : publicError(err, this.input.requestId);
    const cancelled = aborted && error.code === Code.Canceled;
    if (!cancelled && error.code === Code.Internal) this.log.error({ err, step }, "run failed");
    else this.log.info({ step, code: grpcCodeName(error.code), reason: errorMetadata(error) }, cancelled ? "run cancelled" : "run failed");
    this.failure = error;
    return { kind: cancelled ? "cancelled" : "failed" };
  }

  private finish(): void {
    const outcome = this.state.outcome;
    const status = outcome === "completed" ? RunStatus.COMPLETED : outcome === "cancelled" ? RunStatus.CANCELLED : RunStatus.FAILED;
    const totalMs = performance.now() - this.acceptedAt;
    // error and done go out together, after the run's outcome is stored.
    if (this.failure && outcome !== "completed") this.events.push({ case: "error", value: runErrorEvent(this.failure) });
    this.events.push({ case: "done", value: create(RunDoneSchema, { status, duration: durationFromMs(Math.round(totalMs)) }) });
    this.events.close();
    const provider = this.selection?.provider.name ?? "unknown";
    const statusLabel = outcome === "completed" ? "completed" : outcome === "cancelled" ? "cancelled" : "failed";
    this.deps.metrics.runs.inc({ provider, status: statusLabel });
    this.deps.metrics.runDuration.observe({ provider, status: statusLabel }, totalMs / 1000);
    this.runSpan.setAttributes({ "nexus.run.outcome": statusLabel, "nexus.cpu_seconds": this.cpu.seconds });
    if (this.failure) {
      this.runSpan.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(this.failure.code));
      if (outcome === "failed") this.runSpan.setStatus({ code: SpanStatusCode.ERROR, message: this.failure.rawMessage });
    }
    this.runSpan.end();
    this.cleanup();
    // Metering's rule: completed and cancelled runs (the model was called) count as used, failed ones give their reservation back.
    if (this.admission?.kind === "reserved") this.settleQuota(outcome === "failed" ? "release" : "commit", statusLabel);
  }

  private cleanup(): void {
    this.input.signal.removeEventListener("abort", this.onCallAbort);
    this.unregister?.();
    this.unregister = undefined;
    this.events.close();
  }

  /** Settles the quota reservation after the run, never holding up its stream. */
  private settleQuota(how: "commit" | "release", reason: string): void {
    const admission = this.admission;
    if (admission?.kind !== "reserved" || admission.reservationId === "") return;
    const call: PeerCall = { headers: this.forwardHeaders(), signal: AbortSignal.timeout(this.deps.settings.peerTimeoutMs) };
    const settle = how === "commit" ? this.deps.quota.commit(admission.reservationId, call) : this.deps.quota.release(admission.reservationId, reason, call);
    settle.catch((err: unknown) => this.log.warn({ err, reservation_id: admission.reservationId }, `could not ${how} the quota reservation (it expires by itself)`));
  }

  /** Resolves once the first token was written or the stream ended (at most `maxWaitMs`), after pending I/O. */
  private async firstTokenWritten(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstTokenOut, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)))]);
    clearTimeout(timer);
    await letWritesOut();
  }

  /** Appends RunStarted once, in an earlier transaction than the run's outcome. */
  private recordRunStarted(): Promise<void> {
    this.runStartedAppend ??= this.appendRunStarted();
    return this.runStartedAppend;
  }

  private appendRunStarted(): Promise<void> {
    const { principal, requestId } = this.input;
    const event = this.cpu.measure(() => runStarted(this.identity()));
    return this.deps.db
      .transaction((tx) => appendToStream(tx, runStreamId(principal.tenantId, requestId), "any", [event], { metadata: { tenantId: principal.tenantId, actor: principal.keyId } }))
      .then(
        () => undefined,
        (err: unknown) => this.log.error({ err }, "could not record RunStarted"),
      );
  }

  private outcomeEvent(at: Date): NewEvent {
    const id = this.identity();
    const usage = this.usageFigures();
    const timings = this.timingFigures();
    const outcome = this.state.outcome;
    if (outcome === "running") {
      return runCompleted(id, usage, timings, { retrievedChunks: this.passages.length, citations: this.citations.length }, at);
    }
    if (outcome === "cancelled") return runCancelled(id, usage, timings, this.byCancelRun, at);
    const failure = this.failure ?? domainError("INTERNAL", "the run failed");
    return runFailed(
      id,
      usage,
      timings,
      {
        code: grpcCodeName(failure.code),
        reason: runErrorEvent(failure).reason,
        message: failure.rawMessage,
        failedStep: this.state.failedStep ?? "unknown",
      },
      at,
    );
  }

  private identity(): RunIdentity {
    const { principal, requestId } = this.input;
    const selection = this.requireSelection();
    return {
      tenantId: principal.tenantId,
      plan: principal.plan,
      requestId,
      sessionId: this.sessionId,
      corpusId: this.corpusId,
      provider: selection.provider.name,
      model: selection.model,
      reservationId: this.admission?.kind === "reserved" ? this.admission.reservationId : "",
      startedAt: this.startedAt,
    };
  }

  private usageFigures(): RunUsageFigures {
    const u = this.usage;
    return {
      cpuSeconds: this.cpu.seconds,
      gpuSeconds: u?.gpuSeconds ?? 0,
      toolCalls: this.toolCalls,
      inputTokens: u?.inputTokens ?? 0,
      outputTokens: u?.outputTokens ?? [...this.answer].length,
      estimated: u?.estimated ?? true,
    };
  }

  private timingFigures(): RunTimingFigures {
    return {
      totalMs: performance.now() - this.acceptedAt,
      ...(this.timeToFirstTokenMs !== undefined ? { timeToFirstTokenMs: this.timeToFirstTokenMs } : {}),
      retrievalMs: this.retrievalMs,
      generationMs: this.generationMs,
    };
  }

  // ---------------------------------------------------------------- helpers

  /** Runs a step inside its span `agent.<step>` (a child of the run span). */
  private async inStep(step: RunStep, fn: () => Promise<void>): Promise<void> {
    const span = this.tracer.startSpan(`agent.${step}`, { attributes: { "nexus.run.step": step } }, this.runContext);
    try {
      await context.with(trace.setSpan(this.runContext, span), fn);
    } catch (err) {
      const ce = ConnectError.from(err);
      span.setAttribute(GEN_AI.ERROR_TYPE, grpcCodeName(ce.code));
      if (ce.code !== Code.Canceled) span.setStatus({ code: SpanStatusCode.ERROR, message: ce.rawMessage });
      throw err;
    } finally {
      span.end();
    }
  }

  private requireSelection(): ModelSelection {
    if (this.selection === undefined) throw new Error("the run has no provider yet");
    return this.selection;
  }

  /** The caller's credentials, forwarded on calls made for this run. */
  private forwardHeaders(): Headers {
    const headers = new Headers();
    const authorization = this.input.requestHeader.get("authorization");
    if (authorization !== null) headers.set("authorization", authorization);
    return headers;
  }

  private peerCall(timeoutMs: number): PeerCall {
    return { headers: this.forwardHeaders(), signal: this.controller.signal, timeoutMs: this.boundedTimeout(timeoutMs) };
  }

  /** A call timeout that never outlives the run's own deadline. */
  private boundedTimeout(ms: number): number {
    const left = this.input.timeoutMs();
    return left === undefined ? ms : Math.max(1, Math.min(ms, left));
  }

  /** The error an aborted run reports: deadline, shutdown, or a cancellation. */
  private abortError(): ConnectError {
    const reason: unknown = this.controller.signal.reason;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) {
      return domainError("DEADLINE_EXCEEDED", "the run's deadline passed before it finished");
    }
    if (reason instanceof ConnectError && reason.code === Code.Unavailable) {
      return domainError("SERVICE_DRAINING", "the agent replica is shutting down; the run was abandoned", {}, { retryAfterMs: 1000 });
    }
    return domainError("CANCELLED", this.byCancelRun ? "the run was cancelled with CancelRun" : "the client cancelled the run", {
      by_cancel_run: this.byCancelRun,
    });
  }
}

/** The reason label of a refusal for metrics. */
function refusalReason(err: ConnectError): string {
  return runErrorEvent(err).reason;
}

/** Retrieval failures as the run reports them: timeouts and outages as DEPENDENCY_UNAVAILABLE. */
function retrievalError(err: unknown, timeoutMs: number): unknown {
  if (!(err instanceof ConnectError)) return err;
  if (err.code === Code.DeadlineExceeded) {
    return domainError("DEPENDENCY_UNAVAILABLE", `the retrieval service did not answer within ${timeoutMs} ms`, { dependency: "retrieval", timeout_ms: timeoutMs }, { cause: err });
  }
  // The run was not cancelled (the caller checked), so a CANCELLED here is the connection's, and
  // an ABORTED without a reason is too (connect-node's code for a reset or destroyed stream);
  // an ABORTED the retrieval service meant carries its reason and passes through.
  const transportAbort = err.code === Code.Aborted && errorReason(err) === undefined;
  if (transportAbort || err.code === Code.Unavailable || err.code === Code.Canceled || err.code === Code.Unimplemented || err.code === Code.Internal || err.code === Code.Unknown) {
    if (isReason(err, "DEPENDENCY_UNAVAILABLE") && errorMetadata(err).dependency === "retrieval") return err;
    const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
    return domainError(
      "DEPENDENCY_UNAVAILABLE",
      `the retrieval service failed: ${err.rawMessage}`,
      { dependency: "retrieval" },
      { cause: err, ...(retry ? { retryAfterMs: Number(retry.seconds) * 1000 + retry.nanos / 1e6 } : {}) },
    );
  }
  return err;
}
