import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectError } from "@connectrpc/connect";
import { context } from "@opentelemetry/api";
import type { Logger } from "pino";
import { RunAcceptedSchema, RunDoneSchema, RunStatus } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { errorMetadata } from "../../kernel/errors.js";
import { letWritesOut } from "../../kernel/events/foreground.js";
import type { Passage } from "../providers/ports.js";
import { CpuMeter } from "./cpu-meter.js";
import { type Accepted, type AdmissionParts, accept, checkQuota, type QuotaChecked, settleQuota } from "./run-admission.js";
import { type RunContext, type RunDependencies, type RunInput, RunTally } from "./run-context.js";
import { RunControl } from "./run-control.js";
import { grpcCodeName, publicError, runErrorEvent } from "./run-errors.js";
import { RunEventChannel } from "./run-event-channel.js";
import type { WatchableRun } from "./run-journal.js";
import { type Generation, RunRecorder } from "./run-recorder.js";
import { advance, INITIAL_RUN_STATE, type RunState, type RunStep, type StepResult } from "./run-state.js";
import { generate, persistCompleted, retrieve } from "./run-steps.js";
import { RunTelemetry } from "./run-telemetry.js";

export type { RunDependencies, RunInput } from "./run-context.js";

/** NEXUS_AGENT_RESUME_GRACE_MS's default. */
const DEFAULT_RESUME_GRACE_MS = 30_000;

/** Longest wait of the persist step for the first token to be written (a client not reading). */
const FIRST_TOKEN_WRITE_WAIT_MS = 100;

/**
 * RunStarted is stored once the first token is written, and at the latest this long after
 * acceptance (a slow model): other replicas find the run by it (CancelRun).
 */
export const RUN_STARTED_LATEST_MS = 100;

/** What the steps of an accepted run produced so far. */
interface Produced {
  passages: Passage[];
  generation: Generation | undefined;
  failure: ConnectError | undefined;
}

/**
 * One run, driven through the state machine (run-state.ts). `admit()` walks the steps before
 * acceptance — admission (session, provider, quota: run-admission.ts) — and throws their
 * refusals; `start()` sends `accepted` and drives retrieve → generate → persist → done in the
 * background (run-steps.ts, over the run's immutable {@link RunContext}), pushing events into
 * `events`, which the RPC handler streams. Spans: run-telemetry.ts; the turn and the run's
 * events: run-recorder.ts.
 *
 * A run always finishes its persist step and its last event, even when its client is gone;
 * what it could not store then (database down) is retried in the background before
 * `onFinished` (which frees the bulkhead slot); settling its quota reservation is retried too,
 * without holding the slot.
 */
export class RunExecution {
  /** The run's events, with seq and heartbeats. */
  readonly events: RunEventChannel;
  private state: RunState = INITIAL_RUN_STATE;
  private readonly parts: AdmissionParts;
  private readonly prefetch = new AbortController();
  private accepted: Accepted | undefined;
  private quota: QuotaChecked | undefined;
  private unregister: (() => void) | undefined;
  private watchable: WatchableRun | undefined;
  private markFirstTokenSent: () => void = () => {};
  /** Resolves once the handler wrote the first token (or the stream ended). */
  private readonly firstTokenOut = new Promise<void>((resolve) => (this.markFirstTokenSent = resolve));

  constructor(
    private readonly deps: RunDependencies,
    private readonly input: RunInput,
  ) {
    this.events = new RunEventChannel({ heartbeatMs: deps.settings.heartbeatMs, clock: deps.clock });
    const log: Logger = deps.logger.child({ run_id: input.runId, request_id: input.requestId, tenant_id: input.principal.tenantId });
    this.parts = {
      deps,
      input,
      log,
      control: new RunControl(input),
      telemetry: new RunTelemetry({ runId: input.runId, tenantId: input.principal.tenantId, corpusId: input.request.corpusId }),
      cpu: new CpuMeter(),
      tally: new RunTally(),
    };
  }

  /** The run's signal (aborted by client cancel, deadline, shutdown or CancelRun). */
  get signal(): AbortSignal {
    return this.parts.control.signal;
  }

  /** Where the run is in its state machine. */
  get current(): RunState {
    return this.state;
  }

  /**
   * The steps before acceptance: admission (registration for CancelRun, session and history,
   * provider and model within the plan) and the quota check (quota state into the response
   * headers). Throws the refusal as an RPC error; nothing is stored then.
   */
  async admit(): Promise<void> {
    const { deps, input, control, telemetry } = this.parts;
    try {
      this.unregister = deps.activeRuns.register({
        tenantId: input.principal.tenantId,
        requestId: input.runId,
        cancel: () => this.cancel(),
      });
      this.accepted = await telemetry.step("accepted", () => accept(this.parts));
      this.state = advance(this.state, { kind: "ok" });
      this.quota = await telemetry.step("quota_check", () => checkQuota(this.parts, this.prefetch.signal));
      this.state = advance(this.state, { kind: "ok" });
    } catch (err) {
      this.state = advance(this.state, { kind: "failed" });
      const refusal = control.signal.aborted ? control.abortError() : publicError(err, input.runId);
      this.prefetch.abort(refusal);
      deps.metrics.refused.inc({ reason: runErrorEvent(refusal).reason });
      telemetry.end("refused", undefined, refusal);
      this.cleanup();
      throw refusal;
    }
  }

  /**
   * Sends `accepted` and drives the rest of the run in the background; `onFinished` runs
   * once the run has stored its records (the handler frees the bulkhead slot there).
   */
  start(onFinished: () => void): void {
    const ctx = this.context();
    ctx.events.push({
      case: "accepted",
      value: create(RunAcceptedSchema, {
        requestId: ctx.input.runId,
        sessionId: ctx.session.sessionId,
        corpusId: ctx.input.request.corpusId,
        provider: ctx.selection.provider.name,
        model: ctx.selection.model,
      }),
    });
    ctx.events.startHeartbeats();
    // A resumable run outlives a dropped call for the grace period (WatchRun reattaches).
    if (ctx.input.request.resumable) ctx.control.resumable(this.deps.settings.resumeGraceMs ?? DEFAULT_RESUME_GRACE_MS);
    this.watchable = {
      tenantId: ctx.input.principal.tenantId,
      runId: ctx.input.runId,
      sessionId: ctx.session.sessionId,
      events: this.events,
      attachWatcher: () => ctx.control.attachWatcher(),
    };
    this.deps.journal?.add(this.watchable);
    this.deps.metrics.inFlight.inc();
    void context
      .with(ctx.telemetry.context, () => this.drive(ctx))
      .finally(() => {
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
    this.parts.control.cancel();
  }

  /** The run's context, fixed at acceptance. */
  private context(): RunContext {
    if (this.accepted === undefined || this.quota === undefined) throw new Error("the run was not admitted");
    return Object.freeze({
      ...this.parts,
      events: this.events,
      session: this.accepted.session,
      selection: this.accepted.selection,
      admission: this.quota.admission,
      retrieval: this.quota.retrieval,
      startedAt: this.deps.clock(),
      acceptedAt: performance.now(),
    });
  }

  /** Walks the state machine from `retrieve` to `done`, then sends the last events. */
  private async drive(ctx: RunContext): Promise<void> {
    const recorder = new RunRecorder(ctx);
    // Not before the first token: storing it would compete with the run's own retrieval and
    // first token (on PGlite for the event loop itself). Persist records it at the latest.
    void this.firstTokenWritten(RUN_STARTED_LATEST_MS).then(() => recorder.recordStarted());
    const produced: Produced = { passages: [], generation: undefined, failure: undefined };
    while (this.state.step !== "done") {
      const step = this.state.step;
      let result: StepResult;
      try {
        if (step !== "persist" && ctx.control.signal.aborted) throw ctx.control.abortError();
        await ctx.telemetry.step(step, () => this.runStep(ctx, recorder, step, produced));
        result = { kind: "ok" };
      } catch (err) {
        result = this.failed(ctx, err, step, produced);
      }
      this.state = advance(this.state, result);
    }
    this.finish(ctx, produced.failure);
    // Settling the quota never holds the slot (metering may be down for long); records do.
    void this.settle(ctx);
    await recorder.idle();
  }

  /** One step after acceptance. */
  private async runStep(ctx: RunContext, recorder: RunRecorder, step: RunStep, produced: Produced): Promise<void> {
    switch (step) {
      case "retrieve":
        produced.passages = await retrieve(ctx);
        return;
      case "generate":
        produced.generation = await generate(ctx, produced.passages);
        return;
      case "persist":
        // Storing the turn is not needed for the first token: let it reach the client first (on
        // PGlite the transaction would hold the event loop, and with it the token's write).
        if (ctx.tally.timeToFirstTokenMs !== undefined) await this.firstTokenWritten(FIRST_TOKEN_WRITE_WAIT_MS);
        recorder.recordStarted();
        if (this.state.outcome === "running" && produced.generation) return persistCompleted(ctx, recorder, produced.generation);
        if (this.state.outcome === "cancelled") return recorder.storeEnded({ kind: "cancelled", byCancelRun: ctx.control.byCancelRun });
        return recorder.storeEnded({
          kind: "failed",
          failure: produced.failure ?? publicError(undefined, ctx.input.runId),
          failedStep: this.state.failedStep,
        });
      default:
        throw new Error(`step ${step} cannot run after acceptance`);
    }
  }

  /** Records a failed step: the public error (sent as `error` right before `done`) and the step result. */
  private failed(ctx: RunContext, err: unknown, step: RunStep, produced: Produced): StepResult {
    if (step === "persist" && this.state.outcome !== "running") {
      // The failure or cancellation was already reported; storing its record failed too.
      ctx.log.error({ err }, "could not store the failed run's question and event");
      return { kind: "failed" };
    }
    const aborted = ctx.control.signal.aborted && step !== "persist";
    const error = aborted ? ctx.control.abortError() : publicError(err, ctx.input.runId);
    const cancelled = aborted && error.code === Code.Canceled;
    if (!cancelled && error.code === Code.Internal) ctx.log.error({ err, step }, "run failed");
    else ctx.log.info({ step, code: grpcCodeName(error.code), reason: errorMetadata(error) }, cancelled ? "run cancelled" : "run failed");
    produced.failure = error;
    return { kind: cancelled ? "cancelled" : "failed" };
  }

  /** Sends `error` (if the run did not complete) and `done`, and closes the run's telemetry. */
  private finish(ctx: RunContext, failure: ConnectError | undefined): void {
    const outcome = this.state.outcome;
    const status = outcome === "completed" ? RunStatus.COMPLETED : outcome === "cancelled" ? RunStatus.CANCELLED : RunStatus.FAILED;
    const totalMs = performance.now() - ctx.acceptedAt;
    // error and done go out together, after the run's outcome is stored (or its first try failed).
    if (failure && outcome !== "completed") ctx.events.push({ case: "error", value: runErrorEvent(failure) });
    ctx.events.push({ case: "done", value: create(RunDoneSchema, { status, duration: durationFromMs(Math.round(totalMs)) }) });
    ctx.events.close();
    if (this.watchable) this.deps.journal?.ended(this.watchable);
    const provider = ctx.selection.provider.name;
    const label = statusLabel(this.state);
    this.deps.metrics.runs.inc({ provider, status: label });
    this.deps.metrics.runDuration.observe({ provider, status: label }, totalMs / 1000);
    ctx.telemetry.end(label, ctx.cpu.seconds, outcome === "completed" ? undefined : failure);
    this.cleanup();
  }

  /** Metering's rule: completed and cancelled runs (the model was called) count as used, failed ones give their reservation back. */
  private settle(ctx: RunContext): Promise<void> {
    return settleQuota(ctx, ctx.admission, this.state.outcome === "failed" ? "release" : "commit", statusLabel(this.state));
  }

  private cleanup(): void {
    this.parts.control.detach();
    this.unregister?.();
    this.unregister = undefined;
    this.events.close();
    // A refused run gives its reservation back (a refusal after the quota check is a cancellation during it).
    if (this.state.outcome === "refused") void settleQuota(this.parts, this.quota?.admission, "release", "refused");
  }

  /** Resolves once the first token was written or the stream ended (at most `maxWaitMs`), after pending I/O. */
  private async firstTokenWritten(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstTokenOut, new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)))]);
    clearTimeout(timer);
    await letWritesOut();
  }
}

function statusLabel(state: RunState): "completed" | "cancelled" | "failed" {
  return state.outcome === "completed" ? "completed" : state.outcome === "cancelled" ? "cancelled" : "failed";
}
