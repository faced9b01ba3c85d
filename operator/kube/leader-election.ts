import type { Logger } from "pino";
import { operatorMetrics } from "../controller/metrics.js";
import { describeKubeError } from "./api-errors.js";
import type { LeaseLock } from "./lease-lock.js";

/** Options of {@link LeaderElector}. */
export interface LeaderElectionOptions {
  lock: LeaseLock;
  logger: Logger;
  /** How often the leader renews. Default 5000 ms. */
  renewIntervalMs?: number;
  /** How often a candidate tries to acquire. Default 2000 ms. */
  retryIntervalMs?: number;
  /** A leader that could not renew for this long steps down. Default 10000 ms (keep it below the lease duration). */
  renewDeadlineMs?: number;
  /** Called when this replica becomes the leader (start the controllers). */
  onStartedLeading(): Promise<void>;
  /** Called when it stops leading (stop the controllers). */
  onStoppedLeading(): Promise<void>;
}

/**
 * Lease-based leader election (client-go's algorithm): one replica holds the Lease and runs
 * the controllers; the others retry until the holder stops renewing. A leader that cannot renew
 * within the deadline steps down (stops its controllers) before another can take over, so two
 * leaders never reconcile at once. On shutdown the Lease is released so a standby takes over at
 * once instead of waiting for expiry.
 */
export class LeaderElector {
  private leading = false;
  private stopped = false;
  private lastRenew = 0;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly metrics = operatorMetrics();

  constructor(private readonly options: LeaderElectionOptions) {}

  /** Whether this replica leads now. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning (returns at once). */
  start(): void {
    this.metrics.leader.set(0);
    this.loop = this.run();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      this.timer = setTimeout(resolve, ms);
    });
  }

  private async run(): Promise<void> {
    const renewMs = this.options.renewIntervalMs ?? 5_000;
    const retryMs = this.options.retryIntervalMs ?? 2_000;
    const deadlineMs = this.options.renewDeadlineMs ?? 10_000;
    while (!this.stopped) {
      let ok = false;
      try {
        ok = await this.options.lock.tryAcquireOrRenew();
      } catch (err) {
        this.options.logger.warn({ err: describeKubeError(err) }, "leader lease update failed");
      }
      if (this.stopped) break;
      const now = Date.now();
      if (ok) {
        this.lastRenew = now;
        if (!this.leading) {
          this.leading = true;
          this.metrics.leader.set(1);
          this.options.logger.info({ identity: this.options.lock.identity }, "became the leader");
          await this.options.onStartedLeading();
        }
      } else if (this.leading && now - this.lastRenew > deadlineMs) {
        this.leading = false;
        this.metrics.leader.set(0);
        this.options.logger.warn("lost the leader lease; stopping controllers");
        await this.options.onStoppedLeading();
      }
      await this.sleep(this.leading ? renewMs : retryMs);
    }
  }

  /** Stops campaigning; a leader stops its controllers; then the Lease is released if it is ours. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loop;
    if (this.leading) {
      this.leading = false;
      this.metrics.leader.set(0);
      await this.options.onStoppedLeading();
    }
    // Released whether or not this replica knew it led: a stop that came while an acquisition
    // was on the wire leaves the Lease ours without `leading` set. `release` gives it up only
    // when it names this replica.
    await this.options.lock
      .release()
      .catch((err: unknown) => this.options.logger.warn({ err: describeKubeError(err) }, "releasing the leader lease failed"));
  }
}
