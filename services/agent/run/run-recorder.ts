import type { ConnectError } from "@connectrpc/connect";
import { recordFacts } from "../../kernel/commands/index.js";
import type { NewEvent } from "../../kernel/events/ports.js";
import type { ModelUsage } from "../providers/ports.js";
import { type MessageRecord, type StoredCitation, sessionTitle } from "../sessions/session-records.js";
import { keepTrying } from "./aftercare.js";
import { newId, type RunContext } from "./run-context.js";
import { grpcCodeName, runErrorEvent } from "./run-errors.js";
import {
  type RunIdentity,
  type RunTimingFigures,
  type RunUsageFigures,
  runCancelled,
  runCompleted,
  runFailed,
  runStarted,
  runStreamId,
} from "./run-events.js";
import type { RunStep } from "./run-state.js";

/** What a completed run produced. */
export interface Generation {
  answer: string;
  citations: StoredCitation[];
  usage: ModelUsage;
  finishReason: string;
  passages: number;
}

/** How a run ended, as its outcome record says. */
export type RunEnding =
  | { kind: "completed"; generation: Generation }
  | { kind: "failed"; failure: ConnectError; failedStep: RunStep | undefined }
  | { kind: "cancelled"; byCancelRun: boolean };

/** A turn and the outcome event that go into one transaction. */
interface OutcomeRecord {
  messages: MessageRecord[];
  event: NewEvent;
  at: Date;
}

/**
 * True for store errors that fail the same way however often they are tried (bad data,
 * constraint, schema: SQLSTATE classes 22, 23, 42); anything else — a refused or dropped
 * connection, a server shutting down, a serialization failure — may pass on a later try.
 */
export function isPermanentStoreError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^(22|23|42)[0-9A-Z]{3}$/.test(code);
}

/**
 * The one writer of a run's records: RunStarted in a transaction of its own (once the first
 * token is out), then the session turn with the run's outcome event (RunCompleted, RunFailed
 * or RunCancelled) in one transaction — both appended with the kernel's `recordFacts` to the
 * run's stream `agent-run-<tenant>-<run id>`. Writes are serialized, so RunStarted always
 * precedes the outcome: when RunStarted could not be stored yet, it goes into the outcome's
 * transaction, first.
 *
 * A write that fails while the database is down is retried with backoff (bounded, see
 * aftercare.ts) instead of dropped, so a run admitted during an outage still
 * leaves its RunStarted and outcome once the database is back; {@link idle} resolves when
 * nothing is left to retry.
 */
export class RunRecorder {
  private startedStored = false;
  private started: Promise<unknown> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly ctx: RunContext) {}

  /** Stores RunStarted once, retrying in the background until it is stored. */
  recordStarted(): void {
    this.started ??= this.track(this.persistently("RunStarted", undefined));
  }

  /**
   * One attempt to store a completed run's turn (question and answer) with RunCompleted;
   * throws its error. `kept` false: the session was deleted meanwhile, no message stored.
   */
  async storeCompleted(generation: Generation): Promise<{ kept: boolean; assistantMessageId: string }> {
    const record = this.outcomeRecord({ kind: "completed", generation });
    const kept = await this.write(record);
    return { kept, assistantMessageId: record.messages[1]?.messageId ?? "" };
  }

  /**
   * Stores a failed or cancelled run's question with its RunFailed/RunCancelled. Resolves
   * after the first attempt; when that failed, later attempts go on in the background.
   */
  async storeEnded(ending: Exclude<RunEnding, { kind: "completed" }>): Promise<void> {
    const record = this.outcomeRecord(ending);
    try {
      await this.write(record);
    } catch (err) {
      if (isPermanentStoreError(err)) {
        this.ctx.log.error({ err }, "could not store the failed run's question and event");
        return;
      }
      this.ctx.log.warn({ err }, "could not store the run's outcome yet; retrying in the background");
      void this.track(this.persistently(ending.kind === "failed" ? "RunFailed" : "RunCancelled", record));
    }
  }

  /** Resolves once no write is left to retry. */
  async idle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  private track<T>(work: Promise<T>): Promise<T> {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
    return work;
  }

  private async persistently(what: string, record: OutcomeRecord | undefined): Promise<void> {
    const result = await keepTrying(() => this.write(record), {
      shouldRetry: (err) => !isPermanentStoreError(err),
      onRetry: (err, attempt, delayMs) => this.ctx.log.warn({ err, attempt, delay_ms: delayMs }, `could not record ${what}; retrying`),
    });
    if (result.kind === "gave_up")
      this.ctx.log.error({ err: result.error, attempts: result.attempts }, `could not record ${what}; gave up`);
    else if (result.value === false) {
      this.ctx.log.info({ session_id: this.ctx.session.sessionId }, "the session was deleted during the run; its turn was not stored");
    }
  }

  /** One serialized write: RunStarted if not stored yet, then the outcome with its turn. */
  private write(record: OutcomeRecord | undefined): Promise<boolean> {
    const attempt = async (): Promise<boolean> => {
      const { deps, input } = this.ctx;
      const { principal, runId } = input;
      const events: NewEvent[] = [];
      if (!this.startedStored) events.push(this.ctx.cpu.measure(() => runStarted(this.identity())));
      if (record) events.push(record.event);
      if (events.length === 0) return true;
      const kept = await deps.db.transaction(async (tx) => {
        const stored = record
          ? await deps.sessions.recordTurn(tx, {
              tenantId: principal.tenantId,
              sessionId: this.ctx.session.sessionId,
              newSession: this.ctx.session.isNew,
              corpusId: input.request.corpusId,
              title: sessionTitle(input.request.message),
              createdByKey: principal.keyId,
              createdByUser: principal.userId ?? "",
              at: record.at,
              messages: record.messages,
            })
          : true;
        await recordFacts(tx, runStreamId(principal.tenantId, runId), events, {
          metadata: { tenantId: principal.tenantId, actor: principal.keyId },
        });
        return stored;
      });
      this.startedStored = true;
      return kept;
    };
    const next = this.queue.then(attempt, attempt);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private outcomeRecord(ending: RunEnding): OutcomeRecord {
    const { input, deps } = this.ctx;
    const at = deps.clock();
    const user: MessageRecord = {
      messageId: newId("msg"),
      sessionId: this.ctx.session.sessionId,
      role: "user",
      text: input.request.message,
      citations: [],
      requestId: input.runId,
      createdAt: this.ctx.startedAt,
    };
    const messages = [user];
    if (ending.kind === "completed") {
      const { answer, citations } = ending.generation;
      const sessionId = this.ctx.session.sessionId;
      messages.push({
        messageId: newId("msg"),
        sessionId,
        role: "assistant",
        text: answer,
        citations,
        requestId: input.runId,
        createdAt: at,
      });
    }
    return { messages, at, event: this.ctx.cpu.measure(() => this.outcomeEvent(ending, at)) };
  }

  private outcomeEvent(ending: RunEnding, at: Date): NewEvent {
    const id = this.identity();
    const usage = this.usageFigures(ending.kind === "completed" ? ending.generation.usage : undefined);
    const timings = this.timingFigures();
    switch (ending.kind) {
      case "completed":
        return runCompleted(
          id,
          usage,
          timings,
          { retrievedChunks: ending.generation.passages, citations: ending.generation.citations.length },
          at,
        );
      case "cancelled":
        return runCancelled(id, usage, timings, ending.byCancelRun, at);
      case "failed":
        return runFailed(
          id,
          usage,
          timings,
          {
            code: grpcCodeName(ending.failure.code),
            reason: runErrorEvent(ending.failure).reason,
            message: ending.failure.rawMessage,
            failedStep: ending.failedStep ?? "unknown",
          },
          at,
        );
    }
  }

  private identity(): RunIdentity {
    const { input, selection, admission, session, startedAt } = this.ctx;
    return {
      tenantId: input.principal.tenantId,
      plan: input.principal.plan,
      requestId: input.runId,
      sessionId: session.sessionId,
      corpusId: input.request.corpusId,
      provider: selection.provider.name,
      model: selection.model,
      reservationId: admission.kind === "reserved" ? admission.reservationId : "",
      startedAt,
    };
  }

  private usageFigures(u: ModelUsage | undefined): RunUsageFigures {
    const { tally, cpu } = this.ctx;
    return {
      cpuSeconds: cpu.seconds,
      gpuSeconds: u?.gpuSeconds ?? 0,
      toolCalls: tally.toolCalls,
      toolCallUsage: tally.toolCallUsage,
      inputTokens: u?.inputTokens ?? 0,
      outputTokens: u?.outputTokens ?? [...tally.answer].length,
      estimated: u?.estimated ?? true,
    };
  }

  private timingFigures(): RunTimingFigures {
    const { tally, acceptedAt } = this.ctx;
    return {
      totalMs: performance.now() - acceptedAt,
      ...(tally.timeToFirstTokenMs !== undefined ? { timeToFirstTokenMs: tally.timeToFirstTokenMs } : {}),
      retrievalMs: tally.retrievalMs,
      generationMs: tally.generationMs,
    };
  }
}
