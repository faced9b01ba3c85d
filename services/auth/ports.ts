import type { PlanName } from "../kernel/context.js";
import type { NewEvent } from "../kernel/events/ports.js";
import type { ApiKey, KeyKind, KeyStatus } from "./domain/api-key.js";
import type { Tenant } from "./domain/tenant.js";

/**
 * The auth service's ports: what the application needs from storage. The adapter
 * (adapters/postgres.ts) keeps each aggregate's current state in its row and appends the
 * aggregate's events to the event store in the same transaction (the outbox).
 */

/** An aggregate's state with the version of its event stream (0 = not created yet). */
export interface Versioned<S> {
  state: S | undefined;
  version: number;
}

/** Filters and page of ListTenants. */
export interface TenantQuery {
  status?: Tenant["status"];
  plan?: PlanName;
  pageSize: number;
  /** Position after which the page starts (from the previous page's last row). */
  after?: { createdAt: Date; id: string };
}

/** Filters and page of ListApiKeys. Exactly one of tenantId and kind "platform". */
export interface ApiKeyQuery {
  kind: KeyKind;
  /** Required for tenant keys. */
  tenantId?: string;
  /** Only these statuses (computed at `now`); empty = all. */
  statuses: readonly KeyStatus[];
  now: Date;
  inactivityMs: number;
  pageSize: number;
  /** Position after which the page starts (newest first). */
  before?: { createdAt: Date; id: string };
}

/** A key and, for tenant keys, its tenant: what authentication reads. */
export interface Credentials {
  key: ApiKey | undefined;
  tenant: Tenant | undefined;
}

/** Work inside one transaction: lock, count, save (state + events). */
export interface AuthTransaction {
  /** Reads a tenant and locks its row until commit. */
  lockTenant(tenantId: string): Promise<Versioned<Tenant>>;
  /** Reads a key and locks its row until commit. */
  lockApiKey(keyId: string): Promise<Versioned<ApiKey>>;
  /** Keys of the tenant that count against its cap at `now`: not revoked, not expired, not rotating out. */
  countActiveKeys(tenantId: string, now: Date): Promise<number>;
  /**
   * Writes the tenant's new state and appends its events to `tenant-<id>` at
   * `expectedVersion`. A taken slug fails with ALREADY_EXISTS.
   */
  saveTenant(tenant: Tenant, expectedVersion: number, events: readonly NewEvent[]): Promise<void>;
  /** Writes the key's new state and appends its events to `api_key-<id>` at `expectedVersion`. */
  saveApiKey(key: ApiKey, expectedVersion: number, events: readonly NewEvent[]): Promise<void>;
  /** Records a one-time installation fact; false when it was already recorded. */
  markInstallationStep(name: string): Promise<boolean>;
  /** Whether a one-time installation fact was recorded. */
  installationStepDone(name: string): Promise<boolean>;
  /** Whether a platform key that still authenticates (not revoked, not expired) exists. */
  hasUsablePlatformKey(now: Date): Promise<boolean>;
}

/** The auth service's storage. */
export interface AuthStore {
  /** Runs `fn` in one transaction (commit on success, rollback on throw). */
  transaction<R>(fn: (tx: AuthTransaction) => Promise<R>): Promise<R>;
  getTenant(tenantId: string): Promise<Tenant | undefined>;
  getTenantBySlug(slug: string): Promise<Tenant | undefined>;
  listTenants(query: TenantQuery): Promise<Tenant[]>;
  getApiKey(keyId: string): Promise<ApiKey | undefined>;
  listApiKeys(query: ApiKeyQuery): Promise<ApiKey[]>;
  /** One read: the key with its tenant. */
  credentials(keyId: string): Promise<Credentials>;
  /**
   * Sets last_used_at = `at` unless it is already within `minIntervalMs` of `at`
   * (so a busy key costs one write a minute, not one per call).
   */
  touchLastUsed(keyId: string, at: Date, minIntervalMs: number): Promise<void>;
  /** Ids of rotated keys whose grace ended by `now` and that are not yet marked revoked. */
  rotationsDue(now: Date, limit: number): Promise<string[]>;
}
