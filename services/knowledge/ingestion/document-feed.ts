import type { Logger } from "pino";
import type { Database } from "../../kernel/db/ports.js";
import type { LiveProgress } from "./document-events.js";
import { DOCUMENTS_CHANNEL } from "./migrations.js";
import type { DocumentKey } from "./ports.js";

/** What woke a watcher: the stored row changed, or only in-process progress moved. */
export type FeedChange = "stored" | "progress";

const keyOf = (k: DocumentKey): string => `${k.tenantId}/${k.documentId}`;

/**
 * Change notifications for WatchDocument: database NOTIFYs on {@link DOCUMENTS_CHANNEL}
 * (from any process) plus the progress of documents this process's worker is handling right
 * now. The in-process progress matters on PGlite, whose single connection is held by the
 * worker's transaction until the document is done: there the stored row cannot show progress.
 * Notifications are hints — watchers also poll.
 */
export class DocumentFeed {
  private readonly listeners = new Map<string, Set<(change: FeedChange) => void>>();
  private readonly progress = new Map<string, LiveProgress>();
  private unlisten: (() => Promise<void>) | undefined;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** Starts listening for database notifications (failures leave watchers polling). */
  async start(): Promise<void> {
    if (this.unlisten) return;
    try {
      this.unlisten = await this.db.listen(DOCUMENTS_CHANNEL, (payload) => {
        if (payload === "") {
          for (const set of this.listeners.values()) for (const fn of set) fn("stored");
        } else {
          for (const fn of this.listeners.get(payload) ?? []) fn("stored");
        }
      });
    } catch (err) {
      this.logger.warn({ err }, "LISTEN on document changes failed; WatchDocument polls only");
    }
  }

  /** Calls `fn` on every change of one document; returns the unsubscribe function. */
  subscribe(key: DocumentKey, fn: (change: FeedChange) => void): () => void {
    const k = keyOf(key);
    let set = this.listeners.get(k);
    if (!set) this.listeners.set(k, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.listeners.delete(k);
    };
  }

  /** Records in-process progress of a version (undefined clears it) and wakes watchers. */
  setProgress(key: DocumentKey, progress: LiveProgress | undefined): void {
    const k = keyOf(key);
    if (progress) this.progress.set(k, progress);
    else this.progress.delete(k);
    for (const fn of this.listeners.get(k) ?? []) fn(progress ? "progress" : "stored");
  }

  /** In-process progress of a document, when this process is working on it. */
  progressOf(key: DocumentKey): LiveProgress | undefined {
    return this.progress.get(keyOf(key));
  }

  async stop(): Promise<void> {
    const unlisten = this.unlisten;
    this.unlisten = undefined;
    await unlisten?.().catch(() => undefined);
  }
}
