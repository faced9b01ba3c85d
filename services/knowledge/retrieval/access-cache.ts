import type { Logger } from "pino";
import type { EventBus, Observation, ObservedEvent } from "../../kernel/events/ports.js";
import type { LabelRule } from "./policy-engine.js";

/**
 * Per-process cache of what every document-access decision reads besides the access lists: a
 * tenant's enabled policies, its default deny and whether it restricts any document (the
 * access context), and its label rules. Without it every Search read them with one query.
 *
 * Kept honest like the authentication cache (services/kernel/authz/cache-invalidation.ts): a
 * per-process observer of the retrieval events (every process sees every event) drops a
 * tenant's entries on PolicySaved, PolicyEnabledChanged, PolicyDeleted, LabelRulesChanged,
 * DocumentAccessChanged and DocumentAccessSettingsChanged — a change made at one replica is in
 * force at every other within the event's delivery (milliseconds on NATS). The writing process
 * also drops its entries right after commit. While the feed is down (or was never started) the
 * cache is bypassed: every call reads the database, as before.
 *
 * A read that raced an invalidation never stores its (maybe stale) answer: each tenant has a
 * generation, taken before the read and compared before storing.
 */
export class TenantAccessCache<Context> {
  private readonly contexts = new Map<string, Context>();
  private readonly labelRules = new Map<string, { rules: LabelRule[]; version: number }>();
  private readonly generations = new Map<string, number>();
  private epoch = 0;
  private readonly listeners = new Set<(tenantId: string | undefined) => void>();
  private readonly feeds = new Set<{ live: boolean }>();

  /** True while every started feed is live (entries can be trusted). */
  get live(): boolean {
    if (this.feeds.size === 0) return false;
    for (const f of this.feeds) if (!f.live) return false;
    return true;
  }

  /** The tenant's access context, from the cache or `load`. */
  context(tenantId: string, load: () => Promise<Context>): Promise<Context> {
    return this.read(this.contexts, tenantId, load);
  }

  /** The tenant's label rules, from the cache or `load`. */
  rules(tenantId: string, load: () => Promise<{ rules: LabelRule[]; version: number }>) {
    return this.read(this.labelRules, tenantId, load);
  }

  /** Drops a tenant's entries (every tenant's without one) and tells the listeners. */
  invalidate(tenantId?: string): void {
    if (tenantId === undefined) {
      this.epoch++;
      this.contexts.clear();
      this.labelRules.clear();
    } else {
      this.generations.set(tenantId, (this.generations.get(tenantId) ?? 0) + 1);
      this.contexts.delete(tenantId);
      this.labelRules.delete(tenantId);
    }
    for (const listener of this.listeners) listener(tenantId);
  }

  /** Calls `listener` on every change of access of a tenant (undefined: maybe any tenant). */
  onChange(listener: (tenantId: string | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Registers a feed; the cache trusts itself only while every registered feed is live. */
  addFeed(feed: { live: boolean }): () => void {
    this.feeds.add(feed);
    this.invalidate();
    return () => {
      this.feeds.delete(feed);
      this.invalidate();
    };
  }

  private async read<V>(map: Map<string, V>, tenantId: string, load: () => Promise<V>): Promise<V> {
    if (!this.live) return load();
    const hit = map.get(tenantId);
    if (hit !== undefined) return hit;
    const generation = this.generationOf(tenantId);
    const value = await load();
    if (this.live && this.generationOf(tenantId) === generation) map.set(tenantId, value);
    return value;
  }

  private generationOf(tenantId: string): string {
    return `${this.epoch}:${this.generations.get(tenantId) ?? 0}`;
  }
}

/** The retrieval events that change a tenant's access (policies, label rules, access lists, settings). */
const ACCESS_EVENTS = new Set([
  "nexus.events.v1.PolicySaved",
  "nexus.events.v1.PolicyEnabledChanged",
  "nexus.events.v1.PolicyDeleted",
  "nexus.events.v1.LabelRulesChanged",
  "nexus.events.v1.DocumentAccessChanged",
  "nexus.events.v1.DocumentAccessSettingsChanged",
]);

/** The tenant whose access an event changes; null when it changes none; undefined: any tenant. */
export function accessChangeOf(event: Pick<ObservedEvent, "type" | "payload">): string | undefined | null {
  if (!ACCESS_EVENTS.has(event.type)) return null;
  const tenantId = (event.payload as { tenantId?: unknown } | undefined)?.tenantId;
  return typeof tenantId === "string" && tenantId ? tenantId : undefined;
}

/**
 * Starts the observer that keeps `cache` honest (see {@link TenantAccessCache}); stopping the
 * observation unregisters it (the cache is bypassed again if no feed is left).
 */
export async function startAccessCacheInvalidation<C>(options: {
  bus: EventBus;
  cache: TenantAccessCache<C>;
  logger: Logger;
}): Promise<Observation> {
  const { cache, logger } = options;
  const state = { live: false };
  const remove = cache.addFeed(state);
  const observation = await options.bus.observe({
    subject: "retrieval.>",
    handler(event) {
      const tenantId = accessChangeOf(event);
      if (tenantId !== null) cache.invalidate(tenantId);
    },
    onStateChange(live) {
      if (!live) logger.warn("retrieval event feed lost: tenants' policies are read for every query until it is back");
      state.live = live;
      // Whatever was missed while down is dropped, and open watches re-check.
      cache.invalidate();
    },
  });
  state.live = observation.live;
  cache.invalidate();
  return {
    get live() {
      return observation.live;
    },
    async stop() {
      remove();
      await observation.stop();
    },
  };
}
