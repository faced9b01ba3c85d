/**
 * A sleep that can be cut short: polling loops wait on it between rounds and a NOTIFY, a new
 * subscription or `stop()` wakes them at once. A wake with nobody waiting is remembered, so a
 * notification that lands while a round is running triggers another round instead of being lost.
 */
export class WakeSignal {
  private pending = false;
  private wakeWaiter: (() => void) | undefined;

  /** Ends the current (or the next) `wait`. */
  wake(): void {
    if (this.wakeWaiter) this.wakeWaiter();
    else this.pending = true;
  }

  /** Resolves after `ms`, or earlier on `wake()`. One waiter at a time. */
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeWaiter = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeWaiter = done;
    });
  }
}
