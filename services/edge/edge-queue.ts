import { mkdirSync } from "node:fs";
import path from "node:path";
import { DatabaseSync } from "node:sqlite";

/** One queued message. */
export interface QueuedMessage {
  seq: number;
  appId: string;
  clientMessageId: string;
  /** The payload's JSON text, as received (an encryption envelope stays sealed). */
  payload: string;
  bytes: number;
  enqueuedAt: number;
}

/** Why a message was not queued: the queue is at its size bound. */
export class QueueFullError extends Error {
  override name = "QueueFullError";
}

/** A synced app as stored locally. */
export interface LocalApp {
  appId: string;
  keyDigest: string; // hex
  encryptionRequired: boolean;
}

/**
 * The edge agent's durable queue and configuration cache: one SQLite file (Node's built-in
 * `node:sqlite`, WAL journal) in the data directory. A message is on disk before the agent
 * answers; it is removed only after the hub accepted it, so a kill -9 at any point leaves it
 * queued (and the hub's dedupe by client message id absorbs a resend). Bounded by `maxBytes`
 * of payload: past it `enqueue` throws {@link QueueFullError}.
 */
export class EdgeQueue {
  private readonly db: DatabaseSync;
  private totalBytes = 0;
  private count = 0;
  private pending: Array<{
    appId: string;
    clientMessageId: string;
    payload: string;
    resolve: (r: { duplicate: boolean }) => void;
    reject: (err: unknown) => void;
  }> = [];

  constructor(
    dataDir: string,
    readonly maxBytes: number,
  ) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new DatabaseSync(path.join(dataDir, "edge-queue.db"));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = FULL;
      CREATE TABLE IF NOT EXISTS messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        app_id TEXT NOT NULL,
        client_message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        enqueued_at INTEGER NOT NULL,
        UNIQUE (app_id, client_message_id)
      );
      CREATE TABLE IF NOT EXISTS rejected (
        seq INTEGER PRIMARY KEY,
        app_id TEXT NOT NULL,
        client_message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        code TEXT NOT NULL,
        reason TEXT NOT NULL,
        message TEXT NOT NULL,
        rejected_at INTEGER NOT NULL
      );
      CREATE TABLE IF NOT EXISTS config (
        k TEXT PRIMARY KEY,
        v TEXT NOT NULL
      );
    `);
    const row = this.db.prepare("SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM messages").get() as { n: number; b: number };
    this.count = Number(row.n);
    this.totalBytes = Number(row.b);
  }

  /**
   * Queues a message; answers `duplicate: true` (and queues nothing) when the same app already
   * has this client message id queued.
   */
  enqueue(appId: string, clientMessageId: string, payload: string, now = Date.now()): { duplicate: boolean } {
    const [outcome] = this.insertAll([{ appId, clientMessageId, payload }], now);
    if (outcome instanceof Error) throw outcome;
    return outcome ?? { duplicate: true };
  }

  /**
   * {@link enqueue} in a group commit: the messages submitted while the event loop runs are
   * written together in the next turn, in one transaction (one fsync), and each promise settles
   * once that transaction committed — so an answer still means on disk.
   */
  enqueueSoon(appId: string, clientMessageId: string, payload: string): Promise<{ duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      this.pending.push({ appId, clientMessageId, payload, resolve, reject });
      if (this.pending.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const batch = this.pending.splice(0);
    if (batch.length === 0) return;
    let outcomes: Array<{ duplicate: boolean } | QueueFullError>;
    try {
      outcomes = this.insertAll(batch, Date.now());
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    batch.forEach((p, i) => {
      const o = outcomes[i];
      if (o instanceof Error) p.reject(o);
      else p.resolve(o ?? { duplicate: true });
    });
  }

  /** Inserts messages in one transaction, in order; a message past the bound is a QueueFullError in its place. */
  private insertAll(
    items: ReadonlyArray<{ appId: string; clientMessageId: string; payload: string }>,
    now: number,
  ): Array<{ duplicate: boolean } | QueueFullError> {
    const insert = this.db.prepare(
      "INSERT INTO messages (app_id, client_message_id, payload, bytes, enqueued_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, client_message_id) DO NOTHING",
    );
    const outcomes: Array<{ duplicate: boolean } | QueueFullError> = [];
    let count = this.count;
    let total = this.totalBytes;
    this.db.exec("BEGIN");
    try {
      for (const it of items) {
        const bytes = Buffer.byteLength(it.payload, "utf8");
        if (total + bytes > this.maxBytes) {
          outcomes.push(
            new QueueFullError(
              `the edge queue is full (${count} messages, ${total} of ${this.maxBytes} bytes) while the hub is unreachable; retry later`,
            ),
          );
          continue;
        }
        const r = insert.run(it.appId, it.clientMessageId, it.payload, bytes, now);
        if (Number(r.changes) === 0) {
          outcomes.push({ duplicate: true });
          continue;
        }
        count++;
        total += bytes;
        outcomes.push({ duplicate: false });
      }
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
    this.count = count;
    this.totalBytes = total;
    return outcomes;
  }

  /** The apps with anything queued. */
  queuedApps(): string[] {
    return (this.db.prepare("SELECT DISTINCT app_id FROM messages").all() as Array<{ app_id: string }>).map((r) => String(r.app_id));
  }

  /**
   * The oldest messages of one app, in queue order: at most `limit`, and no more than
   * `maxBytes` of payload (but always the first one).
   */
  head(appId: string, limit: number, maxBytes: number): QueuedMessage[] {
    const rows = this.db
      .prepare("SELECT seq, app_id, client_message_id, payload, bytes, enqueued_at FROM messages WHERE app_id = ? ORDER BY seq LIMIT ?")
      .all(appId, limit) as Array<Record<string, unknown>>;
    const out: QueuedMessage[] = [];
    let bytes = 0;
    for (const r of rows) {
      bytes += Number(r.bytes);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push({
        seq: Number(r.seq),
        appId: String(r.app_id),
        clientMessageId: String(r.client_message_id),
        payload: String(r.payload),
        bytes: Number(r.bytes),
        enqueuedAt: Number(r.enqueued_at),
      });
    }
    return out;
  }

  /**
   * Settles a forwarded batch in one transaction: removes the messages the hub accepted, and
   * moves those it refused for good to the `rejected` table (kept for inspection).
   */
  settle(
    accepted: readonly QueuedMessage[],
    rejected: ReadonlyArray<{ m: QueuedMessage; code: string; reason: string; message: string }>,
  ): void {
    const del = this.db.prepare("DELETE FROM messages WHERE seq = ?");
    const keep = this.db.prepare("INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    let count = 0;
    let bytes = 0;
    this.db.exec("BEGIN");
    try {
      for (const m of accepted) {
        if (Number(del.run(m.seq).changes) > 0) {
          count++;
          bytes += m.bytes;
        }
      }
      for (const { m, code, reason, message } of rejected) {
        keep.run(m.seq, m.appId, m.clientMessageId, m.payload, code, reason, message, Date.now());
        if (Number(del.run(m.seq).changes) > 0) {
          count++;
          bytes += m.bytes;
        }
      }
      this.db.exec("COMMIT");
    } catch (err) {
      this.db.exec("ROLLBACK");
      throw err;
    }
    this.count -= count;
    this.totalBytes -= bytes;
  }

  /** Queue depth, bytes, the oldest message's enqueue time, messages refused by the hub. */
  stats(): { depth: number; bytes: number; oldestEnqueuedAt: number | undefined; rejected: number } {
    const oldest = this.db.prepare("SELECT min(enqueued_at) AS t FROM messages").get() as { t: number | null };
    const rejected = this.db.prepare("SELECT count(*) AS n FROM rejected").get() as { n: number };
    return {
      depth: this.count,
      bytes: this.totalBytes,
      oldestEnqueuedAt: oldest.t === null ? undefined : Number(oldest.t),
      rejected: Number(rejected.n),
    };
  }

  /** Stores the synced configuration (so a restart without the hub still validates keys). */
  saveConfig(apps: LocalApp[], syncedAt: number): void {
    this.db.prepare("INSERT OR REPLACE INTO config (k, v) VALUES ('apps', ?)").run(JSON.stringify({ apps, syncedAt }));
  }

  /** The last synced configuration, if any. */
  loadConfig(): { apps: LocalApp[]; syncedAt: number } | undefined {
    const r = this.db.prepare("SELECT v FROM config WHERE k = 'apps'").get() as { v: string } | undefined;
    return r ? (JSON.parse(r.v) as { apps: LocalApp[]; syncedAt: number }) : undefined;
  }

  close(): void {
    this.flush();
    this.db.close();
  }
}
