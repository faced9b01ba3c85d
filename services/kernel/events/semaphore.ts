/** Bounds how many handlers of one consumer run at once (its `concurrency`). */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(private readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new Error(`concurrency must be a positive integer, got ${limit}`);
  }

  /** Permits in use. */
  get inUse(): number {
    return this.active;
  }

  /** Resolves once a permit is free; pair with `release()`. */
  acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active += 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Returns a permit (hands it straight to the next waiter, if any). */
  release(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active -= 1;
  }
}
