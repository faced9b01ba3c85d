/**
 * CPU time attributed to one run: process.cpuUsage() (user + system) deltas around the run's
 * own synchronous work — bounding history, composing or parsing the answer, mapping
 * citations, building its events. Waiting on I/O (retrieval, the model, the database) uses
 * no CPU of ours and is not counted; work done by the RPC framework, the database driver or
 * the garbage collector outside those sections is not attributed to any run. Runs interleave
 * on one event loop, so measuring only synchronous sections is what keeps one run from being
 * charged for another's work.
 */
export class CpuMeter {
  private micros = 0;

  /** Runs `fn` (synchronous) and adds the CPU time it used. */
  measure<T>(fn: () => T): T {
    const start = process.cpuUsage();
    try {
      return fn();
    } finally {
      const d = process.cpuUsage(start);
      this.micros += d.user + d.system;
    }
  }

  /** CPU seconds measured so far. */
  get seconds(): number {
    return this.micros / 1e6;
  }
}
