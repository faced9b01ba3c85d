import { domainError } from "../../kernel/errors.js";

/** Delay suggested to clients refused by a full bulkhead. */
export const BUSY_RETRY_AFTER_MS = 1000;

/**
 * The run bulkhead of one agent replica: at most `max` runs at once
 * (NEXUS_AGENT_MAX_CONCURRENT_RUNS), so a burst cannot exhaust memory, sockets or the model
 * server; the run beyond it is refused at once instead of queueing.
 */
export class Bulkhead {
  private inUse = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new Error(`bulkhead size must be a positive integer, got ${max}`);
  }

  /** Runs holding a slot now. */
  get active(): number {
    return this.inUse;
  }

  /**
   * Takes a slot: returns its release function (idempotent), or throws UNAVAILABLE reason
   * SERVICE_BUSY with RetryInfo when every slot is taken.
   */
  enter(): () => void {
    if (this.inUse >= this.max) {
      throw domainError(
        "SERVICE_BUSY",
        `this agent replica is already serving its maximum of ${this.max} concurrent runs; retry shortly`,
        { max_concurrent_runs: this.max },
        { retryAfterMs: BUSY_RETRY_AFTER_MS },
      );
    }
    this.inUse += 1;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inUse -= 1;
    };
  }
}
