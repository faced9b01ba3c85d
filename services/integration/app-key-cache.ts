import type { Logger } from "pino";
import { SenderAppChangedSchema } from "../../gen/nexus/events/v1/integration_events_pb.js";
import type { Database } from "../kernel/db/ports.js";
import { type EventBus, type Observation, payloadOf } from "../kernel/events/index.js";
import { type AppRow, store } from "./adapters/postgres.js";

/** How long a cached app is trusted at most, even with the change feed up. */
const TTL_MS = 30_000;

/**
 * Sender apps by key digest for `POST /ingress`, so a message costs no database round trip to
 * authenticate. Every replica observes `integration.sender_app_changed` (key rotation,
 * deletion, schema change) and drops the app at once; while that feed is down nothing is
 * cached (every request reads the database), so a rotated key never outlives its rotation by
 * more than the feed's delivery.
 */
export class AppKeyCache {
  private readonly byDigest = new Map<string, { app: AppRow; at: number }>();
  private observation: Observation | undefined;
  private closed = false;

  constructor(
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /** Starts observing app changes (in the background; the cache is off until the feed is live). */
  start(bus: EventBus): void {
    void bus
      .observe({
        subject: "integration.sender_app_changed",
        handler: (event) => {
          const { appId } = payloadOf(SenderAppChangedSchema, event);
          this.forget(appId);
        },
        onStateChange: (live) => {
          if (!live) this.byDigest.clear();
        },
      })
      .then(async (o) => {
        if (this.closed) await o.stop();
        else this.observation = o;
      })
      .catch((err: unknown) => this.logger.warn({ err }, "sender app change feed unavailable; app keys are read from the database"));
  }

  /** The app whose key has this digest. */
  async app(digest: Buffer): Promise<AppRow | undefined> {
    const live = this.observation?.live === true;
    const key = digest.toString("hex");
    const hit = this.byDigest.get(key);
    if (live && hit && Date.now() - hit.at < TTL_MS) return hit.app;
    const app = await store.appByDigest(this.db, digest);
    if (app && live) {
      if (this.byDigest.size >= 10_000) this.byDigest.clear();
      this.byDigest.set(key, { app, at: Date.now() });
    }
    return app;
  }

  /** Drops an app (its key rotated, its schema changed, it was deleted). */
  forget(appId: string): void {
    for (const [k, v] of this.byDigest) if (v.app.id === appId) this.byDigest.delete(k);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.observation?.stop();
    this.byDigest.clear();
  }
}
