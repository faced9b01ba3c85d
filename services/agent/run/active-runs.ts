import { domainError } from "../../kernel/errors.js";

/** A run in progress on this replica, as CancelRun sees it. */
export interface ActiveRun {
  tenantId: string;
  requestId: string;
  /** Aborts the run (its model call at once); its stream ends with error CANCELLED and done. */
  cancel(): void;
}

/**
 * The runs in progress on this replica, by tenant and request id: what CancelRun looks up.
 * A run is registered from admission until its last event.
 */
export class ActiveRuns {
  private readonly runs = new Map<string, ActiveRun>();

  private static key(tenantId: string, requestId: string): string {
    return `${tenantId}\u0000${requestId}`;
  }

  /** Runs in progress. */
  get size(): number {
    return this.runs.size;
  }

  /**
   * Registers a run; returns its unregister function. Runs are keyed by their run id, which
   * the server generates; a second registration of an id in progress (a bug) is refused with
   * ALREADY_EXISTS rather than silently replacing the first run.
   */
  register(run: ActiveRun): () => void {
    const key = ActiveRuns.key(run.tenantId, run.requestId);
    if (this.runs.has(key)) {
      throw domainError("ALREADY_EXISTS", `a run with request id ${run.requestId} is already in progress; run ids must be unique`, {
        request_id: run.requestId,
      });
    }
    this.runs.set(key, run);
    return () => {
      if (this.runs.get(key) === run) this.runs.delete(key);
    };
  }

  /** True when the tenant's run was in progress here and is now being cancelled. */
  cancel(tenantId: string, requestId: string): boolean {
    const run = this.runs.get(ActiveRuns.key(tenantId, requestId));
    if (run === undefined) return false;
    run.cancel();
    return true;
  }

  /** True when the tenant's run is in progress here. */
  has(tenantId: string, requestId: string): boolean {
    return this.runs.has(ActiveRuns.key(tenantId, requestId));
  }
}
