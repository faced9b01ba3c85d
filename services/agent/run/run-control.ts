import { Code, ConnectError } from "@connectrpc/connect";
import { CSRF_HEADER, presentedSessionOf, SESSION_COOKIE } from "../../kernel/authz/console-session.js";
import { domainError } from "../../kernel/errors.js";
import type { PeerCall } from "../ports.js";

/** A client that goes away this close to its deadline is treated as having hit it. */
const DEADLINE_SLACK_MS = 250;

/** What the run control needs of the RPC call. */
export interface RunCall {
  /** The call's signal: client cancel, deadline, server shutdown. */
  signal: AbortSignal;
  requestHeader: Headers;
  /** Milliseconds left before the call's deadline, if it has one. */
  timeoutMs: () => number | undefined;
}

/**
 * How a run is stopped and how it calls other services on its caller's behalf. The run owns
 * an AbortController linked to the call's signal and to CancelRun; its signal goes to the
 * retrieval and model calls, so a cancel aborts them at once. Calls carry the caller's
 * credentials and never get more time than the call's deadline leaves.
 */
export class RunControl {
  private readonly controller = new AbortController();
  private cancelledByCancelRun = false;
  private readonly onCallAbort: () => void;
  /** Set once a resumable run was accepted: how long a dropped call leaves it running. */
  private graceMs: number | undefined;
  private watchers = 0;
  private callGone = false;
  private graceTimer: NodeJS.Timeout | undefined;
  private goneReason: unknown;

  constructor(private readonly call: RunCall) {
    this.onCallAbort = () => {
      if (this.controller.signal.aborted) return;
      // A client whose deadline passed hangs up a moment before our own deadline timer fires:
      // count a hang-up that close to the deadline as the deadline.
      const left = call.timeoutMs();
      const deadline = left !== undefined && left <= DEADLINE_SLACK_MS;
      const reason: unknown = deadline ? new ConnectError("the operation timed out", Code.DeadlineExceeded) : call.signal.reason;
      const shutdown = reason instanceof ConnectError && (reason.code === Code.Unavailable || reason.code === Code.DeadlineExceeded);
      if (this.graceMs !== undefined && !deadline && !shutdown) {
        // A resumable run outlives its dropped call for the grace period (WatchRun reattaches).
        this.callGone = true;
        this.goneReason = reason;
        this.armGrace();
        return;
      }
      this.controller.abort(reason);
    };
    if (call.signal.aborted) this.onCallAbort();
    else call.signal.addEventListener("abort", this.onCallAbort, { once: true });
  }

  /** The run's signal (aborted by client cancel, deadline, shutdown or CancelRun). */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** True when CancelRun cancelled the run. */
  get byCancelRun(): boolean {
    return this.cancelledByCancelRun;
  }

  /** Aborts the run on behalf of CancelRun. */
  cancel(): void {
    if (this.controller.signal.aborted) return;
    this.cancelledByCancelRun = true;
    this.controller.abort(domainError("CANCELLED", "the run was cancelled with CancelRun"));
  }

  /**
   * Makes the accepted run survive its call: a hang-up (not a deadline or shutdown) no longer
   * aborts it; it is cancelled only when no watcher (WatchRun) is attached for `graceMs`.
   */
  resumable(graceMs: number): void {
    this.graceMs = graceMs;
  }

  /** A WatchRun reader attached; call the returned function when it leaves. */
  attachWatcher(): () => void {
    this.watchers += 1;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    let left = false;
    return () => {
      if (left) return;
      left = true;
      this.watchers -= 1;
      this.armGrace();
    };
  }

  /** Starts the grace period when the run has no reader left. */
  private armGrace(): void {
    if (this.graceMs === undefined || !this.callGone || this.watchers > 0 || this.controller.signal.aborted) return;
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (this.watchers === 0 && !this.controller.signal.aborted) this.controller.abort(this.goneReason);
    }, this.graceMs);
    this.graceTimer.unref();
  }

  /** Stops following the call's signal (the run has ended). */
  detach(): void {
    this.call.signal.removeEventListener("abort", this.onCallAbort);
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }

  /** The caller's credentials (API key, or console session), forwarded on calls made for this run. */
  forwardHeaders(): Headers {
    const headers = new Headers();
    const authorization = this.call.requestHeader.get("authorization");
    if (authorization !== null) {
      headers.set("authorization", authorization);
      return headers;
    }
    // A web console call (docs/console.md): its session cookie and CSRF token, checked again by the peer.
    const session = presentedSessionOf(this.call.requestHeader);
    if (session !== undefined) {
      headers.set("cookie", `${SESSION_COOKIE}=${session.token}`);
      headers.set(CSRF_HEADER, this.call.requestHeader.get(CSRF_HEADER) ?? "");
    }
    return headers;
  }

  /** A call on the caller's behalf, aborted with the run (and by `extra`), bounded by the deadline. */
  peerCall(timeoutMs: number, extra?: AbortSignal): PeerCall {
    return {
      headers: this.forwardHeaders(),
      signal: extra ? AbortSignal.any([this.controller.signal, extra]) : this.controller.signal,
      timeoutMs: this.boundedTimeout(timeoutMs),
    };
  }

  /** A call timeout that never outlives the run's own deadline. */
  boundedTimeout(ms: number): number {
    const left = this.call.timeoutMs();
    return left === undefined ? ms : Math.max(1, Math.min(ms, left));
  }

  /** The error an aborted run reports: deadline, shutdown, or a cancellation. */
  abortError(): ConnectError {
    const reason: unknown = this.controller.signal.reason;
    if (reason instanceof ConnectError && reason.code === Code.DeadlineExceeded) {
      return domainError("DEADLINE_EXCEEDED", "the run's deadline passed before it finished");
    }
    if (reason instanceof ConnectError && reason.code === Code.Unavailable) {
      return domainError("SERVICE_DRAINING", "the agent replica is shutting down; the run was abandoned", {}, { retryAfterMs: 1000 });
    }
    return domainError("CANCELLED", this.cancelledByCancelRun ? "the run was cancelled with CancelRun" : "the client cancelled the run", {
      by_cancel_run: this.cancelledByCancelRun,
    });
  }
}
