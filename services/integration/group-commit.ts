import { currentRequestMeta, requestScope } from "../kernel/context.js";
import type { Database, Tx } from "../kernel/db/ports.js";

interface Job<R> {
  run(tx: Tx): Promise<R>;
  resolve(value: R): void;
  reject(err: unknown): void;
}

/**
 * Group commit: work submitted while a transaction is running waits and then runs, all of it,
 * in the next transaction, each piece inside its own SAVEPOINT (a piece that fails rolls back
 * alone and rejects only its own caller). Every append to the event store takes one
 * installation-wide lock until commit, so one commit for many accepted messages instead of one
 * each is what lets ingress keep up under load. Each caller's promise settles after the commit.
 */
export class GroupCommit<R> {
  private queue: Job<R>[] = [];
  private running = false;

  /** `maxBatch`: pieces per transaction (default 200). */
  constructor(
    private readonly db: Database,
    private readonly maxBatch = 200,
  ) {}

  /** Runs `fn` in the next group transaction; resolves once that transaction committed. */
  submit(fn: (tx: Tx) => Promise<R>): Promise<R> {
    // The piece runs in the batch's async context: give it its own request's scope back (the
    // request and correlation ids its events carry).
    const meta = currentRequestMeta();
    const run = meta ? (tx: Tx) => requestScope.run(meta, () => fn(tx)) : fn;
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ run, resolve, reject });
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        const outcomes: ({ ok: true; value: R } | { ok: false; err: unknown })[] = [];
        try {
          await this.db.transaction(async (tx) => {
            for (const [i, job] of batch.entries()) {
              await tx.query(`SAVEPOINT g${i}`);
              try {
                outcomes[i] = { ok: true, value: await job.run(tx) };
                await tx.query(`RELEASE SAVEPOINT g${i}`);
              } catch (err) {
                await tx.query(`ROLLBACK TO SAVEPOINT g${i}`);
                outcomes[i] = { ok: false, err };
              }
            }
          });
        } catch (err) {
          // The commit itself failed (database gone): nothing of the batch is stored.
          for (const job of batch) job.reject(err);
          continue;
        }
        batch.forEach((job, i) => {
          const o = outcomes[i];
          if (o?.ok) job.resolve(o.value);
          else job.reject(o?.err);
        });
      }
    } finally {
      this.running = false;
    }
  }
}
