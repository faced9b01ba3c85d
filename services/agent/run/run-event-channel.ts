import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HeartbeatSchema, type RunResponse, RunResponseSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";

/** One event of a Run stream without its seq (`RunResponse.event` with a case). */
export type RunEvent = Exclude<RunResponse["event"], { case: undefined }>;

/** Options of {@link RunEventChannel}. */
export interface RunEventChannelOptions {
  /** Quiet time after which a heartbeat is sent (NEXUS_AGENT_HEARTBEAT_MS). Default 10 000. */
  heartbeatMs?: number;
  /** Wall clock for `Heartbeat.sent_at`. Default `new Date()`. */
  clock?: () => Date;
}

/**
 * The ordered event log of one run. The run's steps push events as they happen; readers
 * follow the log. The channel gives every event its `seq` (1, 2, 3, … with no gap,
 * heartbeats included) at the moment it is pushed, so the order on the wire is the order of
 * `seq`. While started, a heartbeat is pushed whenever nothing else was pushed for
 * `heartbeatMs`. After `close()` pushes are ignored and every reader ends once it has read
 * the whole log. Events are kept (in memory, no I/O) for the run's lifetime and as long as
 * the run stays retained, so a reader can start after any seq (WatchRun): the Run call
 * and any number of watchers read the same log.
 */
export class RunEventChannel implements AsyncIterable<RunResponse> {
  private seq = 0n;
  private readonly log: RunResponse[] = [];
  private waiters: (() => void)[] = [];
  private closed = false;
  private heartbeats = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeatMs: number;
  private readonly clock: () => Date;

  constructor(options: RunEventChannelOptions = {}) {
    this.heartbeatMs = options.heartbeatMs ?? 10_000;
    this.clock = options.clock ?? (() => new Date());
  }

  /** Events pushed so far (the last seq). */
  get lastSeq(): bigint {
    return this.seq;
  }

  /** True once closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** Appends an event with the next seq; returns it, or undefined when the channel is closed. */
  push(event: RunEvent): RunResponse | undefined {
    if (this.closed) return undefined;
    this.seq += 1n;
    const response = create(RunResponseSchema, { seq: this.seq, event });
    this.log.push(response);
    this.wakeAll();
    this.arm();
    return response;
  }

  /** Starts sending heartbeats during quiet periods. */
  startHeartbeats(): void {
    this.heartbeats = true;
    this.arm();
  }

  /** Stops heartbeats and ends the stream after the buffered events. Idempotent. */
  close(): void {
    this.closed = true;
    this.heartbeats = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wakeAll();
  }

  private wakeAll(): void {
    if (this.waiters.length === 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.heartbeats || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.push({ case: "heartbeat", value: create(HeartbeatSchema, { sentAt: timestampFromDate(this.clock()) }) });
    }, this.heartbeatMs);
    this.timer.unref();
  }

  /** Every event from the first. */
  [Symbol.asyncIterator](): AsyncGenerator<RunResponse> {
    return this.follow(0n);
  }

  /**
   * The events after `afterSeq` (those already pushed, then live ones) until the log is closed
   * and read, or `signal` aborts (the reader left).
   */
  async *follow(afterSeq: bigint, signal?: AbortSignal): AsyncGenerator<RunResponse> {
    // Event n sits at index n - 1.
    let next = afterSeq < 0n ? 0 : Number(afterSeq);
    for (;;) {
      const event = this.log[next];
      if (event !== undefined) {
        next += 1;
        yield event;
        continue;
      }
      if (this.closed || signal?.aborted) return;
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        signal?.addEventListener("abort", () => resolve(), { once: true });
      });
    }
  }
}
