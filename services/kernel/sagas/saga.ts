import type { Database, Queryable } from "../db/ports.js";
import { domainError, isReason } from "../errors.js";
import { appendToStream, readStream } from "../events/event-store.js";
import type { EventMetadata, RecordedEvent } from "../events/ports.js";
import { registerEventTopics } from "../events/topics.js";
import { counter } from "../metrics.js";
import { claimSagaLease, releaseSagaLease, type SagaLease } from "./saga-lease.js";

/**
 * A small saga runtime on the event store (R10). A saga is a list of steps, each with an
 * optional compensation; its whole life is recorded as events on its own stream
 * (`saga-<id>`), and its state is those events folded — there is no other saga table. A
 * runner reads the stream, does the next thing (run a step, compensate one, finish) and
 * appends what happened, at the version it read: so a runner killed at any point is resumed
 * by calling {@link runSaga} again (or {@link resumeSagas} at start-up), and two runners never
 * both record the same step (the second one's append is a CONCURRENCY_CONFLICT and it stops).
 *
 * Delivery is at-least-once: a step interrupted by a crash (a `StepStarted` without outcome)
 * counts as a failed attempt and runs again. Steps and compensations must therefore be
 * idempotent, and a compensation must tolerate its step having done nothing or only part.
 */

/** What a step or compensation gets. */
export interface SagaStepContext<I> {
  sagaId: string;
  input: I;
  /** 1 for the first attempt of this step (or compensation), then 2, 3, … */
  attempt: number;
  /** Aborted when the saga's deadline passes while the step runs. */
  signal: AbortSignal;
}

/** One step of a saga. */
export interface SagaStep<I> {
  /** Unique within the saga, [a-z0-9_-]. */
  name: string;
  run(ctx: SagaStepContext<I>): Promise<void>;
  /** Undo the step (idempotent). Steps without one are skipped when compensating. */
  compensate?(ctx: SagaStepContext<I>): Promise<void>;
  /**
   * Once this step completed, the saga can no longer be undone: later failures and the
   * deadline no longer trigger compensation; the remaining steps are retried and, when they
   * still fail, the saga ends `failed` for an operator to look at.
   */
  pointOfNoReturn?: boolean;
}

/** A saga's definition, registered by name. */
export interface SagaDefinition<I> {
  /** e.g. "tenant-offboarding"; stored in SagaStarted, used by {@link resumeSagas}. */
  name: string;
  steps: readonly SagaStep<I>[];
  /** Attempts per step (and per compensation) before giving up. Default 3. */
  maxAttempts?: number;
  /** Delay before the 2nd attempt; doubles each attempt, capped at 30 s. Default 200 ms. */
  retryDelayMs?: number;
  /** From start to end; past it an undoable saga is compensated. Default 10 minutes. */
  timeoutMs?: number;
}

export type SagaStatus = "running" | "compensating" | "completed" | "compensated" | "failed";

/** A saga's state, folded from its stream. */
export interface SagaState {
  sagaId: string;
  name: string;
  status: SagaStatus;
  input: unknown;
  tenantId?: string;
  startedAt: Date;
  deadline: Date;
  /** Stream version: events recorded so far. */
  version: number;
  /** Steps completed, in order. */
  completed: string[];
  /** Steps attempted at least once (completed or not), in order. */
  started: string[];
  /** Attempts per step name (runs, then compensations under `compensate:<name>`). */
  attempts: Record<string, number>;
  /** Steps compensated, in the order it happened. */
  compensated: string[];
  /** The point-of-no-return step completed. */
  irreversible: boolean;
  /** A step running now (StepStarted without outcome), if any. */
  inFlight?: string;
  /** Why the saga compensates or failed. */
  reason?: string;
  lastError?: string;
  /** Every failed attempt (steps and compensations), oldest first; the newest {@link MAX_SAGA_ERRORS}. */
  errors: SagaAttemptError[];
  /** Steps that were recorded as the point of no return when they completed. */
  pointOfNoReturnSteps: string[];
  updatedAt: Date;
}

/** A failed attempt of a step or of its compensation. */
export interface SagaAttemptError {
  step: string;
  attempt: number;
  compensation: boolean;
  error: string;
  at: Date;
}

/** How many failed attempts {@link SagaState.errors} keeps (the newest). */
export const MAX_SAGA_ERRORS = 100;

export const SAGA_STREAM_PREFIX = "saga-";
const SAGA_ID = /^[A-Za-z0-9_.:-]{1,200}$/;
const TERMINAL: ReadonlySet<SagaStatus> = new Set(["completed", "compensated", "failed"]);

/**
 * Event types of a saga's stream (topic `saga.<event>`). Their payloads are the canonical
 * protobuf JSON of the messages of proto/nexus/sagas/v1/saga_events.proto (ListEventTypes and
 * reflection serve the descriptors); the runtime writes and folds the same JSON it always did.
 */
export const SAGA_EVENTS = {
  started: "nexus.sagas.v1.SagaStarted",
  stepStarted: "nexus.sagas.v1.SagaStepStarted",
  stepCompleted: "nexus.sagas.v1.SagaStepCompleted",
  stepFailed: "nexus.sagas.v1.SagaStepFailed",
  compensationStarted: "nexus.sagas.v1.SagaCompensationStarted",
  compensationStepStarted: "nexus.sagas.v1.SagaCompensationStepStarted",
  stepCompensated: "nexus.sagas.v1.SagaStepCompensated",
  compensationFailed: "nexus.sagas.v1.SagaCompensationFailed",
  completed: "nexus.sagas.v1.SagaCompleted",
  compensated: "nexus.sagas.v1.SagaCompensated",
  failed: "nexus.sagas.v1.SagaFailed",
} as const;

const TOPICS: Record<string, string> = {
  [SAGA_EVENTS.started]: "saga.started",
  [SAGA_EVENTS.stepStarted]: "saga.step_started",
  [SAGA_EVENTS.stepCompleted]: "saga.step_completed",
  [SAGA_EVENTS.stepFailed]: "saga.step_failed",
  [SAGA_EVENTS.compensationStarted]: "saga.compensation_started",
  [SAGA_EVENTS.compensationStepStarted]: "saga.compensation_step_started",
  [SAGA_EVENTS.stepCompensated]: "saga.step_compensated",
  [SAGA_EVENTS.compensationFailed]: "saga.compensation_failed",
  [SAGA_EVENTS.completed]: "saga.completed",
  [SAGA_EVENTS.compensated]: "saga.compensated",
  [SAGA_EVENTS.failed]: "saga.failed",
};

registerEventTopics(TOPICS);

const COMPENSATING_TYPES: ReadonlySet<string> = new Set([
  SAGA_EVENTS.compensationStarted,
  SAGA_EVENTS.compensationStepStarted,
  SAGA_EVENTS.stepCompensated,
  SAGA_EVENTS.compensationFailed,
]);

const sagaEvents = counter("nexus_saga_events_total", "Saga state events recorded, by saga and event", ["saga", "event"]);

/** The stream of a saga. */
export function sagaStreamId(sagaId: string): string {
  return `${SAGA_STREAM_PREFIX}${sagaId}`;
}

function assertSagaId(sagaId: string): void {
  if (!SAGA_ID.test(sagaId)) {
    throw domainError("INVALID_ARGUMENT", "saga id must be 1 to 200 characters of [A-Za-z0-9_.:-]", { field: "saga_id" });
  }
}

/** Folds a saga's events into its state (undefined for an empty stream). */
export function foldSaga(events: readonly RecordedEvent[]): SagaState | undefined {
  let s: SagaState | undefined;
  for (const e of events) {
    const p = (e.payload ?? {}) as Record<string, unknown>;
    if (e.type === SAGA_EVENTS.started) {
      s = {
        sagaId: String(p.sagaId),
        name: String(p.name),
        status: "running",
        input: p.input,
        startedAt: e.occurredAt,
        deadline: new Date(String(p.deadline)),
        version: 0,
        completed: [],
        started: [],
        attempts: {},
        compensated: [],
        irreversible: false,
        errors: [],
        pointOfNoReturnSteps: [],
        updatedAt: e.occurredAt,
      };
      if (typeof p.tenantId === "string" && p.tenantId) s.tenantId = p.tenantId;
    }
    if (!s) continue;
    s.version = e.version;
    s.updatedAt = e.occurredAt;
    const step = String(p.step ?? "");
    switch (e.type) {
      case SAGA_EVENTS.stepStarted:
        s.attempts[step] = (s.attempts[step] ?? 0) + 1;
        if (!s.started.includes(step)) s.started.push(step);
        s.inFlight = step;
        break;
      case SAGA_EVENTS.stepCompleted:
        s.completed.push(step);
        if (p.pointOfNoReturn === true) {
          s.irreversible = true;
          s.pointOfNoReturnSteps.push(step);
        }
        s.inFlight = undefined;
        break;
      case SAGA_EVENTS.stepFailed:
      case SAGA_EVENTS.compensationFailed: {
        const compensation = e.type === SAGA_EVENTS.compensationFailed;
        s.lastError = String(p.error ?? "");
        const attempt = typeof p.attempt === "number" ? p.attempt : (s.attempts[compensation ? `compensate:${step}` : step] ?? 0);
        s.errors.push({ step, attempt, compensation, error: s.lastError, at: e.occurredAt });
        if (s.errors.length > MAX_SAGA_ERRORS) s.errors.shift();
        s.inFlight = undefined;
        break;
      }
      case SAGA_EVENTS.compensationStarted:
        s.status = "compensating";
        s.reason = String(p.reason ?? "");
        s.inFlight = undefined;
        break;
      case SAGA_EVENTS.compensationStepStarted:
        s.attempts[`compensate:${step}`] = (s.attempts[`compensate:${step}`] ?? 0) + 1;
        s.inFlight = `compensate:${step}`;
        break;
      case SAGA_EVENTS.stepCompensated:
        s.compensated.push(step);
        s.inFlight = undefined;
        break;
      case SAGA_EVENTS.completed:
        s.status = "completed";
        break;
      case SAGA_EVENTS.compensated:
        s.status = "compensated";
        break;
      case SAGA_EVENTS.failed:
        s.status = "failed";
        s.reason = String(p.reason ?? "");
        break;
    }
  }
  return s;
}

/** A saga's current state, or undefined when there is no such saga. */
export async function sagaStatus(db: Queryable, sagaId: string): Promise<SagaState | undefined> {
  assertSagaId(sagaId);
  return foldSaga(await readStream(db, sagaStreamId(sagaId)));
}

/** Options of {@link startSaga}. */
export interface StartSagaOptions<I> {
  sagaId: string;
  input: I;
  /** Recorded as the events' tenant (the tenant's change feed and audit see them). */
  tenantId?: string;
  now?: Date;
  /** Who started it and in which request (recorded on SagaStarted: the audit trail's actor). */
  origin?: Pick<EventMetadata, "actor" | "requestId" | "correlationId">;
}

/**
 * Records a saga's start (its first event); run it with {@link runSaga}. Starting the same
 * saga id again is ALREADY_EXISTS (a caller retrying a start gets the existing saga's id back
 * from the error's metadata and can query or run it).
 */
export async function startSaga<I>(db: Database, def: SagaDefinition<I>, options: StartSagaOptions<I>): Promise<SagaState> {
  assertSagaId(options.sagaId);
  const now = options.now ?? new Date();
  const deadline = new Date(now.getTime() + (def.timeoutMs ?? 10 * 60_000));
  const payload = {
    sagaId: options.sagaId,
    name: def.name,
    input: options.input,
    tenantId: options.tenantId ?? "",
    deadline: deadline.toISOString(),
  };
  try {
    await db.transaction((tx) =>
      appendToStream(tx, sagaStreamId(options.sagaId), "no_stream", [event(SAGA_EVENTS.started, payload, now)], {
        metadata: { ...metadataOf(options.tenantId).metadata, ...options.origin },
      }),
    );
  } catch (err) {
    if (isReason(err, "CONCURRENCY_CONFLICT")) {
      throw domainError("ALREADY_EXISTS", `saga ${options.sagaId} was already started`, { saga_id: options.sagaId }, { cause: err });
    }
    throw err;
  }
  sagaEvents.inc({ saga: def.name, event: "started" });
  const state = await sagaStatus(db, options.sagaId);
  if (!state) throw new Error(`saga ${options.sagaId} vanished after its start`);
  return state;
}

/** Options of {@link runSaga}. */
export interface RunSagaOptions {
  /** The clock (tests). */
  now?: () => Date;
  /** Waits between attempts (tests make it instant). */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Drive the saga only while holding its lease (platform.saga_leases): one runner at a time
   * across processes. When another live runner holds it, `runSaga` returns the saga's current
   * state at once without touching it (or, with `waitForLease`, waits for the lease to lapse
   * or the saga to end). Without a lease, concurrent runners still never record a step twice
   * (the stream version decides), but both may run it.
   */
  lease?: SagaLease & { waitForLease?: boolean };
  /** Stop (between transitions) once aborted: a process shutting down hands the saga to the next runner. */
  signal?: AbortSignal;
}

function metadataOf(tenantId: string | undefined): { metadata: EventMetadata } {
  return { metadata: tenantId ? { tenantId } : {} };
}

function event(type: string, payload: unknown, occurredAt?: Date) {
  const topic = TOPICS[type];
  return { type, payload, ...(topic ? { topic } : {}), ...(occurredAt ? { occurredAt } : {}) };
}

/** The saga ran into another runner (its append lost the race): this runner stops. */
class Superseded extends Error {}

/**
 * Drives a saga until it ends (completed, compensated or failed), recording every step on its
 * stream. Safe to call on a saga in any state — after a crash, on another process, twice:
 * it continues from the stream. Returns the final state; when another runner is driving the
 * saga at the same time, returns the state as this runner last saw it.
 */
export async function runSaga<I>(db: Database, def: SagaDefinition<I>, sagaId: string, options: RunSagaOptions = {}): Promise<SagaState> {
  const lease = options.lease;
  if (!lease) return driveSaga(db, def, sagaId, options, () => false);
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (;;) {
    const current = await sagaStatus(db, sagaId);
    if (!current) throw domainError("NOT_FOUND", `no saga ${sagaId}`, { saga_id: sagaId });
    if (TERMINAL.has(current.status)) return current;
    if (await claimSagaLease(db, sagaId, lease)) break;
    if (!lease.waitForLease || options.signal?.aborted) return current;
    await sleep(Math.min(1_000, lease.ttlMs));
  }
  // Renewed every third of its TTL while the saga runs; once a renewal fails (another runner
  // took over after a stall), this runner stops at its next transition.
  let lost = false;
  let renewing: Promise<void> = Promise.resolve();
  const timer = setInterval(
    () => {
      renewing = claimSagaLease(db, sagaId, lease).then(
        (held) => {
          if (!held) lost = true;
        },
        () => undefined, // a failed renewal is retried at the next tick; the lease lasts 3 ticks
      );
    },
    Math.max(100, Math.floor(lease.ttlMs / 3)),
  );
  timer.unref();
  try {
    return await driveSaga(db, def, sagaId, options, () => lost);
  } finally {
    clearInterval(timer);
    await renewing;
    if (!lost) await releaseSagaLease(db, sagaId, lease.owner).catch(() => undefined);
  }
}

async function driveSaga<I>(
  db: Database,
  def: SagaDefinition<I>,
  sagaId: string,
  options: RunSagaOptions,
  leaseLost: () => boolean,
): Promise<SagaState> {
  const now = options.now ?? (() => new Date());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const maxAttempts = def.maxAttempts ?? 3;
  const baseDelay = def.retryDelayMs ?? 200;
  const stream = sagaStreamId(sagaId);

  for (;;) {
    const s = await sagaStatus(db, sagaId);
    if (!s) throw domainError("NOT_FOUND", `no saga ${sagaId}`, { saga_id: sagaId });
    if (s.name !== def.name) {
      throw domainError("FAILED_PRECONDITION", `saga ${sagaId} is a ${s.name} saga, not ${def.name}`, { saga_id: sagaId });
    }
    if (TERMINAL.has(s.status) || options.signal?.aborted) return s;
    const meta = metadataOf(s.tenantId);
    const append = async (type: string, payload: Record<string, unknown>): Promise<void> => {
      if (leaseLost()) throw new Superseded();
      try {
        await db.transaction((tx) => appendToStream(tx, stream, s.version, [event(type, { sagaId, ...payload }, now())], meta));
      } catch (err) {
        if (isReason(err, "CONCURRENCY_CONFLICT")) throw new Superseded();
        throw err;
      }
      sagaEvents.inc({ saga: def.name, event: TOPICS[type]?.slice("saga.".length) ?? type });
    };
    try {
      // A step that was running when its runner died: count it as a failed attempt.
      if (s.inFlight !== undefined) {
        const interrupted = s.inFlight.startsWith("compensate:") ? SAGA_EVENTS.compensationFailed : SAGA_EVENTS.stepFailed;
        await append(interrupted, {
          step: s.inFlight.replace(/^compensate:/, ""),
          error: "interrupted (the runner stopped during the step)",
        });
        continue;
      }
      if (s.status === "running") {
        if (now() >= s.deadline && !s.irreversible) {
          await append(SAGA_EVENTS.compensationStarted, { reason: `timeout: the saga did not finish by ${s.deadline.toISOString()}` });
          continue;
        }
        const step = def.steps[s.completed.length];
        if (!step) {
          await append(SAGA_EVENTS.completed, {});
          continue;
        }
        const attempts = s.attempts[step.name] ?? 0;
        if (attempts >= maxAttempts) {
          if (s.irreversible)
            await append(SAGA_EVENTS.failed, {
              reason: `step ${step.name} failed ${attempts} times after the point of no return: ${s.lastError ?? ""}`,
            });
          else
            await append(SAGA_EVENTS.compensationStarted, { reason: `step ${step.name} failed ${attempts} times: ${s.lastError ?? ""}` });
          continue;
        }
        if (attempts > 0) await sleep(Math.min(baseDelay * 2 ** (attempts - 1), 30_000));
        await append(SAGA_EVENTS.stepStarted, { step: step.name, attempt: attempts + 1 });
        const after = s.version + 1;
        const outcome = await attempt(
          () => step.run({ sagaId, input: s.input as I, attempt: attempts + 1, signal: deadlineSignal(s, now) }),
          s,
          now,
          s.irreversible,
        );
        s.version = after;
        if (outcome === undefined)
          await append(SAGA_EVENTS.stepCompleted, { step: step.name, pointOfNoReturn: step.pointOfNoReturn === true });
        else await append(SAGA_EVENTS.stepFailed, { step: step.name, attempt: attempts + 1, error: outcome });
        continue;
      }
      // compensating: undo started steps, newest first
      const next = [...s.started].reverse().find((name) => !s.compensated.includes(name));
      if (next === undefined) {
        await append(SAGA_EVENTS.compensated, {});
        continue;
      }
      const step = def.steps.find((x) => x.name === next);
      const key = `compensate:${next}`;
      const attempts = s.attempts[key] ?? 0;
      if (attempts >= maxAttempts) {
        await append(SAGA_EVENTS.failed, { reason: `compensation of ${next} failed ${attempts} times: ${s.lastError ?? ""}` });
        continue;
      }
      if (attempts > 0) await sleep(Math.min(baseDelay * 2 ** (attempts - 1), 30_000));
      await append(SAGA_EVENTS.compensationStepStarted, { step: next, attempt: attempts + 1 });
      s.version += 1;
      const outcome = step?.compensate
        ? await attempt(
            () =>
              step.compensate?.({ sagaId, input: s.input as I, attempt: attempts + 1, signal: new AbortController().signal }) ??
              Promise.resolve(),
            s,
            now,
            true,
          )
        : undefined;
      if (outcome === undefined) await append(SAGA_EVENTS.stepCompensated, { step: next, skipped: !step?.compensate });
      else await append(SAGA_EVENTS.compensationFailed, { step: next, attempt: attempts + 1, error: outcome });
    } catch (err) {
      if (err instanceof Superseded) return (await sagaStatus(db, sagaId)) ?? s;
      throw err;
    }
  }
}

/** An AbortSignal that fires at the saga's deadline. */
function deadlineSignal(s: SagaState, now: () => Date): AbortSignal {
  return AbortSignal.timeout(Math.max(0, s.deadline.getTime() - now().getTime()));
}

/** Runs `fn`; resolves to undefined on success, to the error message on failure or at the deadline. */
async function attempt(fn: () => Promise<void>, s: SagaState, now: () => Date, ignoreDeadline: boolean): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const work = fn().then(() => undefined);
    if (ignoreDeadline) return await work;
    const left = Math.max(0, s.deadline.getTime() - now().getTime());
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`timeout: the saga's deadline ${s.deadline.toISOString()} passed during the step`), left);
    });
    return await Promise.race([work, timeout]);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

/** Sagas that have not ended, oldest first (their ids and names). */
export async function unfinishedSagas(db: Queryable): Promise<{ sagaId: string; name: string }[]> {
  const { rows } = await db.query<{ stream_id: string; name: string }>(
    `SELECT s.stream_id, s.payload->>'name' AS name
       FROM platform.events s
      WHERE s.type = $1 AND s.stream_id LIKE 'saga-%' AND s.version = 1
        AND NOT EXISTS (SELECT 1 FROM platform.events e WHERE e.stream_id = s.stream_id AND e.type = ANY($2::text[]))
      ORDER BY s.position`,
    [SAGA_EVENTS.started, [SAGA_EVENTS.completed, SAGA_EVENTS.compensated, SAGA_EVENTS.failed]],
  );
  return rows.map((r) => ({ sagaId: r.stream_id.slice(SAGA_STREAM_PREFIX.length), name: r.name }));
}

/** One saga in {@link listSagas}. */
export interface SagaSummary {
  sagaId: string;
  name: string;
  status: SagaStatus;
  tenantId?: string;
  startedAt: Date;
  updatedAt: Date;
  /** Events on its stream. */
  version: number;
  /** Store position of its start (the list's order, newest first; a page cursor). */
  position: bigint;
}

/** Filters and paging of {@link listSagas}. */
export interface ListSagasOptions {
  /** At most this many (1 to 1000; default 100). */
  limit?: number;
  /** Only this tenant's sagas. */
  tenantId?: string;
  /** Only sagas of this definition. */
  name?: string;
  /** Only sagas started before this position (the previous page's last `position`). */
  beforePosition?: bigint;
}

/** The newest sagas first, with their status from their last event. */
export async function listSagas(db: Queryable, options: number | ListSagasOptions = {}): Promise<SagaSummary[]> {
  const o: ListSagasOptions = typeof options === "number" ? { limit: options } : options;
  const { rows } = await db.query<{
    stream_id: string;
    position: bigint;
    name: string;
    tenant_id: string;
    started_at: Date;
    updated_at: Date;
    version: number;
    last_type: string;
  }>(
    `SELECT s.stream_id, s.position, s.payload->>'name' AS name, s.payload->>'tenantId' AS tenant_id, s.occurred_at AS started_at,
            l.occurred_at AS updated_at, l.version, l.type AS last_type
       FROM platform.events s
       JOIN LATERAL (SELECT version, type, occurred_at FROM platform.events e WHERE e.stream_id = s.stream_id ORDER BY version DESC LIMIT 1) l ON true
      WHERE s.type = $1 AND s.stream_id LIKE 'saga-%' AND s.version = 1
        AND ($3::text IS NULL OR s.payload->>'tenantId' = $3)
        AND ($4::text IS NULL OR s.payload->>'name' = $4)
        AND ($5::bigint IS NULL OR s.position < $5)
      ORDER BY s.position DESC
      LIMIT $2`,
    [SAGA_EVENTS.started, Math.max(1, Math.min(o.limit ?? 100, 1000)), o.tenantId ?? null, o.name ?? null, o.beforePosition ?? null],
  );
  const statusOf = (type: string): SagaStatus => {
    if (type === SAGA_EVENTS.completed) return "completed";
    if (type === SAGA_EVENTS.compensated) return "compensated";
    if (type === SAGA_EVENTS.failed) return "failed";
    return COMPENSATING_TYPES.has(type) ? "compensating" : "running";
  };
  return rows.map((r) => ({
    sagaId: r.stream_id.slice(SAGA_STREAM_PREFIX.length),
    name: r.name,
    status: statusOf(r.last_type),
    ...(r.tenant_id ? { tenantId: r.tenant_id } : {}),
    startedAt: r.started_at,
    updatedAt: r.updated_at,
    version: r.version,
    position: BigInt(r.position),
  }));
}

/**
 * Resumes every unfinished saga whose definition is given (at start-up, after a crash), one
 * after another. Sagas of other names are left alone. With `options.lease`, a saga another
 * live runner holds is skipped (returned as it is). Returns their states.
 */
export async function resumeSagas(
  db: Database,
  defs: readonly SagaDefinition<never>[],
  options: RunSagaOptions = {},
): Promise<SagaState[]> {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const out: SagaState[] = [];
  for (const { sagaId, name } of await unfinishedSagas(db)) {
    const def = byName.get(name);
    if (def) out.push(await runSaga(db, def as SagaDefinition<unknown>, sagaId, options));
  }
  return out;
}
