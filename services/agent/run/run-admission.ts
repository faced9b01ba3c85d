import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import { domainError, isReason } from "../../kernel/errors.js";
import type { CorpusModelSettings, QuotaAdmission } from "../ports.js";
import type { ModelSelection } from "../providers/provider-registry.js";
import { boundedHistory } from "../sessions/bounded-history.js";
import { GEN_AI } from "../telemetry/gen-ai-attributes.js";
import { keepTrying } from "./aftercare.js";
import type { CpuMeter } from "./cpu-meter.js";
import { quotaHeaders, quotaRefusal } from "./quota-headers.js";
import { newId, type RetrievalOutcome, type RunDependencies, type RunInput, type RunSession, type RunTally } from "./run-context.js";
import type { RunControl } from "./run-control.js";
import { isDependencyFailure } from "./run-errors.js";
import { searchPassages } from "./run-steps.js";
import type { RunTelemetry } from "./run-telemetry.js";

/** What admission works with: the run before it has a context. */
export interface AdmissionParts {
  deps: RunDependencies;
  input: RunInput;
  log: Logger;
  control: RunControl;
  telemetry: RunTelemetry;
  cpu: CpuMeter;
  tally: RunTally;
}

/** What the `accepted` step found: the session and the provider and model. */
export interface Accepted {
  session: RunSession;
  selection: ModelSelection;
}

/** What the `quota_check` step came to: the reservation, and the Search call it started. */
export interface QuotaChecked {
  admission: QuotaAdmission;
  retrieval: Promise<RetrievalOutcome>;
}

/**
 * The `accepted` step: the session (NOT_FOUND for an unknown or foreign one) and its bounded
 * history, the corpus's model settings, and the provider and model within the tenant's plan.
 * The run registers for CancelRun before it waits on anything.
 */
export async function accept(parts: AdmissionParts): Promise<Accepted> {
  const { deps, input, cpu, telemetry } = parts;
  const [session, corpus] = await Promise.all([loadSession(parts), corpusModelSettings(parts)]);
  const options = input.request.options;
  const selection = cpu.measure(() =>
    deps.providers.select({
      requestedProvider: options?.provider ?? "",
      requestedModel: options?.model ?? "",
      corpus,
      principal: input.principal,
    }),
  );
  telemetry.annotate({
    [GEN_AI.CONVERSATION_ID]: session.sessionId,
    [GEN_AI.PROVIDER_NAME]: selection.provider.telemetryName,
    [GEN_AI.REQUEST_MODEL]: selection.model,
  });
  return { session, selection };
}

async function loadSession(parts: AdmissionParts): Promise<RunSession> {
  const { deps, input, cpu } = parts;
  const { principal, request } = input;
  if (request.sessionId === "") return { sessionId: newId("ses"), isNew: true, history: [] };
  const { db, sessions, settings } = deps;
  const found = await sessions.get(db, principal.tenantId, request.sessionId);
  if (found === undefined) throw domainError("NOT_FOUND", `session ${request.sessionId} not found`, { session_id: request.sessionId });
  if (settings.history.turns === 0 || settings.history.chars === 0) return { sessionId: found.sessionId, isNew: false, history: [] };
  const recent = await sessions.recentMessages(db, principal.tenantId, request.sessionId, settings.history.turns * 2);
  return { sessionId: found.sessionId, isNew: false, history: cpu.measure(() => boundedHistory(recent, settings.history)) };
}

/**
 * The corpus's model settings. A missing corpus or a refused caller fails the run before
 * acceptance; when retrieval is merely unavailable the installation defaults are used (the
 * retrieve step then reports the outage as the run's error).
 */
async function corpusModelSettings(parts: AdmissionParts): Promise<CorpusModelSettings> {
  const { deps, input, control, log } = parts;
  if (deps.breakers.retrieval.state === "open") return {};
  try {
    return await deps.corpusSettings.modelSettings(
      input.principal.tenantId,
      input.request.corpusId,
      control.peerCall(deps.settings.peerTimeoutMs),
    );
  } catch (err) {
    if (control.signal.aborted || !isDependencyFailure(err)) throw err;
    log.warn({ err }, "could not read the corpus's model settings; using the installation defaults");
    return {};
  }
}

/**
 * The `quota_check` step: reserves the run with metering (keyed by the server's run id, never
 * the client's request id) and puts the quota state into the response headers. Search does
 * not depend on the quota, so it starts first and the two calls overlap (time to first token
 * is max(quota, search), not their sum); `prefetch` aborts it when the run is refused.
 */
export async function checkQuota(parts: AdmissionParts, prefetch: AbortSignal): Promise<QuotaChecked> {
  const { deps, input, control, log } = parts;
  const { quota, settings, metrics } = deps;
  const retrieval = parts.telemetry.within(() =>
    searchPassages(parts, prefetch).then(
      (passages): RetrievalOutcome => ({ kind: "ok", passages }),
      (error: unknown): RetrievalOutcome => ({ kind: "failed", error }),
    ),
  );
  let admission: QuotaAdmission;
  try {
    admission = await quota.check({ tenantId: input.principal.tenantId, requestId: input.runId }, control.peerCall(settings.peerTimeoutMs));
  } catch (err) {
    if (isReason(err, "QUOTA_EXCEEDED")) throw quotaRefusal(err as ConnectError);
    if (control.signal.aborted || !isDependencyFailure(err)) throw err;
    if (!settings.quotaFailOpen) {
      throw domainError(
        "DEPENDENCY_UNAVAILABLE",
        "the metering service could not be reached to check the quota; the run was not started",
        { dependency: "metering" },
        { cause: err, retryAfterMs: 1000 },
      );
    }
    log.warn({ err }, "metering could not be reached: run admitted without a quota check (NEXUS_AGENT_QUOTA_FAIL_OPEN)");
    metrics.quotaUnchecked.inc();
    admission = { kind: "unchecked", reason: ConnectError.from(err).rawMessage };
  }
  for (const [k, v] of quotaHeaders(admission)) input.responseHeader.set(k, v);
  return { admission, retrieval };
}

/**
 * Settles a quota reservation after the run, never holding up its stream: `commit` for runs
 * that used the model (completed, cancelled), `release` for failed and refused ones. While
 * metering cannot be reached the call is retried with backoff (bounded), so a failed run's
 * reservation is given back once metering is back instead of being held until it expires.
 * Resolves when settled or given up.
 */
export async function settleQuota(
  parts: Pick<AdmissionParts, "deps" | "control" | "log">,
  admission: QuotaAdmission | undefined,
  how: "commit" | "release",
  reason: string,
): Promise<void> {
  if (admission?.kind !== "reserved" || admission.reservationId === "") return;
  const { deps, control, log } = parts;
  const headers = control.forwardHeaders();
  const result = await keepTrying(
    () => {
      const call = { headers, signal: AbortSignal.timeout(deps.settings.peerTimeoutMs) };
      return how === "commit"
        ? deps.quota.commit(admission.reservationId, call)
        : deps.quota.release(admission.reservationId, reason, call);
    },
    {
      shouldRetry: isDependencyFailure,
      onRetry: (err, attempt) =>
        log.warn({ err, attempt, reservation_id: admission.reservationId }, `could not ${how} the quota reservation; retrying`),
    },
  );
  if (result.kind === "gave_up") {
    log.warn(
      { err: result.error, reservation_id: admission.reservationId },
      `could not ${how} the quota reservation (it expires by itself)`,
    );
  }
}
