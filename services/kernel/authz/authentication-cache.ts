import { hash } from "node:crypto";
import type { Principal } from "../context.js";

/** Options of {@link AuthenticationCache}. */
export interface AuthenticationCacheOptions {
  /** Longest time an answer is reused (NEXUS_AUTH_CACHE_TTL_MS). 0 turns caching off. Default 30 000. */
  ttlMs?: number;
  /** Most answers kept; the least recently used goes first (NEXUS_AUTH_CACHE_MAX_ENTRIES). Default 10 000. */
  maxEntries?: number;
  /** Clock for expiry (tests inject one). Default the wall clock. */
  clock?: () => Date;
}

/** What a lookup returns: made once per stored answer, shared by every hit (read-only). */
interface Answer {
  readonly principal: Principal;
  readonly credential: object | undefined;
}

interface Entry {
  answer: Answer;
  principal: Principal;
  keyId: string;
  tenantId: string | undefined;
  /** Epoch ms after which the entry is dead: min(now + ttl, valid_until). */
  deadline: number;
}

/** What {@link AuthenticationCache.invalidate} drops. */
export interface InvalidationTarget {
  keyIds?: readonly string[];
  tenantIds?: readonly string[];
  /** Drop everything (the invalidation feed may have missed events). */
  all?: boolean;
}

const liveCaches = new Set<AuthenticationCache>();

/**
 * Drops matching answers from every authentication cache of this process at once. The auth
 * service calls it right after committing a revocation, rotation, suspension, role or plan
 * change, so the process that made the change never serves a stale answer; other processes
 * learn it from the event feed (see cache-invalidation.ts).
 */
export function invalidateInProcess(target: InvalidationTarget): void {
  for (const cache of liveCaches) cache.invalidate(target);
}

/**
 * Per-process cache of positive Authenticate answers: bounded (LRU), each answer kept at most
 * the TTL and never past its `valid_until` (key expiry, end of a rotation grace, inactivity).
 * Refusals are never cached. Entries are indexed by key id and tenant id so revocation,
 * rotation, suspension, role and plan changes drop exactly what they affect.
 *
 * Presented keys are never kept: the map is keyed by their SHA-256.
 *
 * A lookup that raced an invalidation must not re-insert the stale answer: callers take
 * `epoch()` before asking the authenticator and pass it to `set`, which ignores answers that
 * started before the latest invalidation.
 */
export class AuthenticationCache {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly clock: () => Date;
  /** Epoch ms now: `Date.now` unless a clock is injected (no Date object per lookup). */
  private readonly now: () => number;
  private invalidations = 0;
  /** Id of the entry most recently moved to the end of `entries` (see `lookup`). */
  private last: string | undefined;
  private enabled = true;

  constructor(options: AuthenticationCacheOptions = {}) {
    this.ttlMs = Math.max(0, options.ttlMs ?? 30_000);
    this.maxEntries = Math.max(1, options.maxEntries ?? 10_000);
    this.clock = options.clock ?? (() => new Date());
    this.now = options.clock ? () => this.clock().getTime() : Date.now;
    liveCaches.add(this);
  }

  /** The cache key of a presented key (its SHA-256; the key itself is never stored). */
  static keyOf(presented: string): string {
    return hash("sha256", presented, "base64url");
  }

  /** Number of answers held. */
  get size(): number {
    return this.entries.size;
  }

  /** Counter that moves on every invalidation (see `set`). */
  epoch(): number {
    return this.invalidations;
  }

  /**
   * Turns reuse on or off. Off while the invalidation feed is down (an event could be missed),
   * which also empties the cache; every call then asks the authenticator.
   */
  setEnabled(enabled: boolean): void {
    if (!enabled) this.clear();
    this.enabled = enabled;
  }

  /** The cached principal for a presented key, if fresh. */
  get(presented: string): Principal | undefined {
    return this.lookup(presented)?.principal;
  }

  /** The cached principal and credential (see `set`) for a presented key, if fresh. */
  lookup(presented: string): Answer | undefined {
    if (!this.enabled || this.ttlMs === 0) return undefined;
    const id = AuthenticationCache.keyOf(presented);
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    if (entry.deadline <= this.now()) {
      this.entries.delete(id);
      return undefined;
    }
    // Most recently used last: Map keeps insertion order (already last: nothing to move).
    if (this.last !== id) {
      this.entries.delete(id);
      this.entries.set(id, entry);
      this.last = id;
    }
    // Made when stored: no object per hit.
    return entry.answer;
  }

  /**
   * Stores an answer obtained by a lookup that started at `startedAtEpoch`. Ignored when an
   * invalidation happened since (the answer may predate it), when caching is off, or when the
   * answer is already past its `validUntil`. `credential` (the authenticator's record of the
   * key) lives and dies with the principal.
   */
  set(presented: string, principal: Principal, validUntil: Date | undefined, startedAtEpoch: number, credential?: object): void {
    if (!this.enabled || this.ttlMs === 0 || startedAtEpoch !== this.invalidations) return;
    const now = this.now();
    const deadline = Math.min(now + this.ttlMs, validUntil?.getTime() ?? Number.POSITIVE_INFINITY);
    if (deadline <= now) return;
    const id = AuthenticationCache.keyOf(presented);
    this.entries.delete(id);
    this.last = id;
    this.entries.set(id, {
      answer: Object.freeze({ principal, credential }),
      principal,
      keyId: principal.keyId,
      tenantId: principal.kind === "tenant" ? principal.tenantId : undefined,
      deadline,
    });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.entries.delete(oldest.value);
    }
  }

  /** Drops the answers of these keys and tenants (or all). */
  invalidate(target: InvalidationTarget): void {
    this.invalidations += 1;
    if (target.all) {
      this.entries.clear();
      return;
    }
    const keys = new Set(target.keyIds ?? []);
    const tenants = new Set(target.tenantIds ?? []);
    if (keys.size === 0 && tenants.size === 0) return;
    for (const [id, entry] of this.entries) {
      if (keys.has(entry.keyId) || (entry.tenantId !== undefined && tenants.has(entry.tenantId))) this.entries.delete(id);
    }
  }

  /** Drops everything. */
  clear(): void {
    this.invalidate({ all: true });
  }

  /** Detaches the cache from in-process invalidation (call when its process part shuts down). */
  close(): void {
    this.entries.clear();
    liveCaches.delete(this);
  }
}
