import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CallOptions, type Client, Code, ConnectError } from "@connectrpc/connect";
import type { AgentService, RunRequestSchema, RunResponse } from "../../gen/nexus/agent/v1/agent_service_pb.js";

/** Options of {@link resumableRun}. */
export interface ResumableRunOptions {
  /** Cancels the run's stream (the run itself ends after the server's grace period, or use CancelRun). */
  signal?: AbortSignal;
  /** Reattach attempts in a row without a new event before giving up. Default 8. */
  maxAttempts?: number;
  /** First wait before reattaching, doubled per attempt up to 5 s. Default 200 ms. */
  backoffMs?: number;
  /** Told before each reattach: the last seq received and the attempt (from 1). */
  onReattach?: (afterSeq: bigint, attempt: number) => void;
  /** Extra call options (headers, timeout) of every call. */
  callOptions?: Omit<CallOptions, "signal">;
}

/** Refusals of WatchRun that no retry changes: the run is gone, or the caller may not see it. */
const FINAL: ReadonlySet<Code> = new Set([
  Code.NotFound,
  Code.FailedPrecondition,
  Code.PermissionDenied,
  Code.Unauthenticated,
  Code.InvalidArgument,
  Code.ResourceExhausted,
  Code.Unimplemented,
]);

const MAX_BACKOFF_MS = 5_000;

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Runs the agent (`AgentService.Run` with `resumable: true`) and yields the run's events
 * once each, in `seq` order, through dropped connections: when the stream breaks after
 * `accepted`, it reattaches with `WatchRun(request_id, after_seq)` — the server replays what
 * was missed and follows the run live — until `done`. Refusals before acceptance (quota,
 * validation, authentication) and final WatchRun refusals (NOT_FOUND, RUN_ENDED: read the
 * answer with GetSession) are thrown. Works with any transport (connect-web in browsers,
 * connect-node, gRPC).
 */
export function resumableRun(
  agent: Client<typeof AgentService>,
  request: MessageInitShape<typeof RunRequestSchema>,
  options: ResumableRunOptions = {},
): AsyncGenerator<RunResponse> {
  const call = callOf(options);
  return follow(agent, agent.run({ ...request, resumable: true }, call), "", 0n, options);
}

/**
 * Reattaches to a run known by its request id (e.g. kept across a page reload) with
 * `WatchRun(request_id, after_seq)` and yields its events after `afterSeq` once each, in `seq`
 * order, until `done` — reattaching again when the stream breaks, and retrying UNAVAILABLE
 * refusals (RUN_ON_OTHER_REPLICA: the ingress may route the next try to the run's replica)
 * with the same bounded backoff. Final refusals (RUN_ENDED, NOT_FOUND, permission) are thrown.
 */
export function watchRunResumable(
  agent: Client<typeof AgentService>,
  requestId: string,
  afterSeq: bigint,
  options: ResumableRunOptions = {},
): AsyncGenerator<RunResponse> {
  return follow(agent, agent.watchRun({ requestId, afterSeq }, callOf(options)), requestId, afterSeq, options);
}

function callOf(options: ResumableRunOptions): CallOptions {
  return { ...(options.callOptions ?? {}), ...(options.signal ? { signal: options.signal } : {}) };
}

async function* follow(
  agent: Client<typeof AgentService>,
  first: AsyncIterable<RunResponse>,
  knownRunId: string,
  afterSeq: bigint,
  options: ResumableRunOptions,
): AsyncGenerator<RunResponse> {
  const { signal, maxAttempts = 8, backoffMs = 200, onReattach } = options;
  const call = callOf(options);
  let runId = knownRunId;
  let lastSeq = afterSeq;
  let attempts = 0;
  let stream = first;
  for (;;) {
    try {
      for await (const response of stream) {
        // Applied once each: a repeated or older event is skipped.
        if (response.seq <= lastSeq) continue;
        lastSeq = response.seq;
        attempts = 0;
        if (response.event.case === "accepted") runId = response.event.value.requestId;
        yield response;
        if (response.event.case === "done") return;
      }
      if (runId === "") return;
      throw new ConnectError("the run's stream ended before its last event", Code.Unavailable);
    } catch (err) {
      const error = ConnectError.from(err);
      if (signal?.aborted || runId === "" || FINAL.has(error.code) || ++attempts > maxAttempts) throw err;
      onReattach?.(lastSeq, attempts);
      await wait(Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** (attempts - 1)), signal);
      stream = agent.watchRun({ requestId: runId, afterSeq: lastSeq }, call);
    }
  }
}
