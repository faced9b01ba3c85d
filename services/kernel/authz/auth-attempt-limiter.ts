import { hash } from "node:crypto";
import type { Logger } from "pino";
import { type BucketLimit, tokensAt } from "../limits/token-bucket.js";
import { addressBucketOf } from "./client-address.js";

/** Which bucket throttled an attempt: the client's address or the key id it claimed. */
export type AttemptScope = "client_address" | "key_id";

/** Options of {@link AuthAttemptLimiter}. */
export interface AuthAttemptLimiterOptions {
  /** Refused attempts a bucket allows in a burst (NEXUS_AUTH_ATTEMPT_BURST). Default 20. */
  burst?: number;
  /** Refused attempts a bucket regains per second (NEXUS_AUTH_ATTEMPT_RATE_PER_SECOND). Default 1. */
  ratePerSecond?: number;
  /** Most buckets of each scope, and most remembered good credentials (NEXUS_AUTH_ATTEMPT_MAX_ENTRIES). Default 10 000. */
  maxEntries?: number;
  /** Epoch ms now (tests inject one). Default `Date.now`. */
  now?: () => number;
  /** A bucket ran dry: a throttled period starts (called once per period, for the audit record and a log line). */
  onThrottleStart?: (period: ThrottlePeriod) => void;
  /** A bucket refilled completely after a throttled period (or was dropped): `throttled` calls were refused in it. */
  onThrottleEnd?: (period: ThrottlePeriod & { throttled: number }) => void;
}

/** A bucket's throttled period: which bucket (its scope and the address bucket or key id). */
export interface ThrottlePeriod {
  scope: AttemptScope;
  subject: string;
}

/** What {@link AuthAttemptLimiter.admit} answers when the attempt must wait. */
export interface Throttled {
  scope: AttemptScope;
  /** How long until the bucket holds one attempt again. */
  retryAfterMs: number;
  /** This is the first attempt of the bucket's throttled period (the one to audit). */
  startsPeriod: boolean;
}

interface Bucket {
  tokens: number;
  atMs: number;
  /** Attempts refused since this bucket ran dry (0: not in a throttled period). */
  throttled: number;
}

/**
 * Token buckets on REFUSED authentication, per client address (an IPv6 address's /64) and per
 * claimed API key id, checked by the authentication gate before any key lookup: each refused
 * attempt takes a token from both buckets of the call, a successful one takes nothing. When a
 * bucket is empty the gate refuses the call at once (RESOURCE_EXHAUSTED AUTH_RATE_LIMITED) —
 * no database read, no audit row — unless the presented credential is one this process saw
 * succeed recently ({@link succeeded}): the holder of a good key is not locked out by someone
 * spraying wrong secrets at its key id or from behind the same address.
 *
 * State is per process (N replicas allow N× the rate) and bounded: each map keeps at most
 * `maxEntries` (least recently used dropped first), so random key ids or addresses cannot grow
 * it. Dropping a bucket only forgets its debt (a full bucket and no bucket are the same).
 */
export class AuthAttemptLimiter {
  /** Refused attempts per bucket: its burst and its refill per second. */
  private readonly limit: BucketLimit;
  private readonly maxEntries: number;
  private readonly now: () => number;
  private readonly options: AuthAttemptLimiterOptions;
  private readonly byScope: Record<AttemptScope, Map<string, Bucket>> = { client_address: new Map(), key_id: new Map() };
  /** SHA-256 of credentials that authenticated in this process (LRU), allowed through a dry bucket. */
  private readonly goodCredentials = new Map<string, true>();

  constructor(options: AuthAttemptLimiterOptions = {}) {
    this.limit = { burst: Math.max(0, options.burst ?? 20), ratePerSecond: Math.max(0, options.ratePerSecond ?? 1) };
    this.maxEntries = Math.max(1, options.maxEntries ?? 10_000);
    this.now = options.now ?? Date.now;
    this.options = options;
  }

  /** False when configured off (burst or rate 0): the gate then skips it entirely. */
  get enabled(): boolean {
    return this.limit.burst > 0 && this.limit.ratePerSecond > 0;
  }

  /** Buckets held, by scope (tests and the memory bound). */
  get size(): { clientAddress: number; keyId: number; goodCredentials: number } {
    return { clientAddress: this.byScope.client_address.size, keyId: this.byScope.key_id.size, goodCredentials: this.goodCredentials.size };
  }

  /**
   * Whether an attempt from `address` claiming `keyId` may go on to the key lookup. Undefined:
   * yes. Otherwise the bucket that is dry and when it holds an attempt again; the refused call
   * counts in that bucket's throttled period (the first one starts the period). `presented` is
   * only hashed when a bucket is dry, to let a credential known to be good through.
   */
  admit(address: string | undefined, keyId: string | undefined, presented: string | undefined): Throttled | undefined {
    if (!this.enabled) return undefined;
    const nowMs = this.now();
    const byAddress = address === undefined ? undefined : this.peek("client_address", addressBucketOf(address), nowMs);
    const byKey = keyId === undefined ? undefined : this.peek("key_id", keyId, nowMs);
    const dry = byAddress !== undefined && byAddress.tokens < 1 ? byAddress : byKey !== undefined && byKey.tokens < 1 ? byKey : undefined;
    if (dry === undefined) return undefined;
    if (presented !== undefined && this.goodCredentials.has(credentialId(presented))) return undefined;
    const scope: AttemptScope = dry === byAddress ? "client_address" : "key_id";
    const subject = scope === "client_address" ? addressBucketOf(address!) : keyId!;
    const startsPeriod = dry.throttled === 0;
    if (startsPeriod) this.options.onThrottleStart?.({ scope, subject });
    dry.throttled += 1;
    return { scope, retryAfterMs: Math.max(1, Math.ceil(((1 - dry.tokens) / this.limit.ratePerSecond) * 1000)), startsPeriod };
  }

  /** An attempt was refused after its lookup: one token from the address's and the key id's buckets. */
  refused(address: string | undefined, keyId: string | undefined): void {
    if (!this.enabled) return;
    const nowMs = this.now();
    if (address !== undefined) this.take("client_address", addressBucketOf(address), nowMs);
    if (keyId !== undefined) this.take("key_id", keyId, nowMs);
  }

  /** A credential authenticated: remembered (by its SHA-256) so a dry bucket does not stop it. */
  succeeded(presented: string): void {
    if (!this.enabled) return;
    const id = credentialId(presented);
    this.goodCredentials.delete(id);
    this.goodCredentials.set(id, true);
    if (this.goodCredentials.size > this.maxEntries) this.goodCredentials.delete(this.goodCredentials.keys().next().value as string);
  }

  /** Forgets every bucket and credential (ending open throttled periods). */
  clear(): void {
    for (const scope of ["client_address", "key_id"] as const) {
      for (const [subject, bucket] of this.byScope[scope]) this.ended(scope, subject, bucket);
      this.byScope[scope].clear();
    }
    this.goodCredentials.clear();
  }

  /** The bucket refilled to now (undefined: none, i.e. full); a full one ends its period and is dropped. */
  private peek(scope: AttemptScope, subject: string, nowMs: number): Bucket | undefined {
    const map = this.byScope[scope];
    const bucket = map.get(subject);
    if (bucket === undefined) return undefined;
    this.refill(bucket, nowMs);
    if (bucket.tokens >= this.limit.burst) {
      map.delete(subject);
      this.ended(scope, subject, bucket);
      return undefined;
    }
    return bucket;
  }

  private take(scope: AttemptScope, subject: string, nowMs: number): void {
    const map = this.byScope[scope];
    let bucket = map.get(subject);
    if (bucket === undefined) {
      bucket = { tokens: this.limit.burst, atMs: nowMs, throttled: 0 };
    } else {
      this.refill(bucket, nowMs);
      map.delete(subject);
    }
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    // Most recently used last: Map keeps insertion order, so the first is the one to drop.
    map.set(subject, bucket);
    if (map.size > this.maxEntries) {
      const [oldest, dropped] = map.entries().next().value as [string, Bucket];
      map.delete(oldest);
      this.ended(scope, oldest, dropped);
    }
  }

  /** The rate limiter's refill (token-bucket.ts), kept in place: the bucket's tokens at `nowMs`. */
  private refill(bucket: Bucket, nowMs: number): void {
    bucket.tokens = tokensAt(bucket, this.limit, nowMs);
    bucket.atMs = nowMs;
  }

  private ended(scope: AttemptScope, subject: string, bucket: Bucket): void {
    if (bucket.throttled > 0) this.options.onThrottleEnd?.({ scope, subject, throttled: bucket.throttled });
  }
}

/**
 * An {@link AuthAttemptLimiter} that logs each throttled period: a warning when a bucket runs
 * dry, an info line with the number of calls it refused when it is full again (or dropped).
 */
export function createLoggedAuthAttemptLimiter(
  options: Omit<AuthAttemptLimiterOptions, "onThrottleStart" | "onThrottleEnd">,
  logger: Logger,
): AuthAttemptLimiter {
  return new AuthAttemptLimiter({
    ...options,
    onThrottleStart: ({ scope, subject }) =>
      logger.warn({ scope, subject }, "refused authentication attempts throttled: further attempts are refused without a key lookup"),
    onThrottleEnd: ({ scope, subject, throttled }) =>
      logger.info({ scope, subject, throttled }, "refused authentication attempts no longer throttled"),
  });
}

function credentialId(presented: string): string {
  return hash("sha256", presented, "base64url");
}
