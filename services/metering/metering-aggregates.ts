import { QuotaUpdatedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import type { Aggregate } from "../kernel/commands/index.js";
import { streamVersion } from "../kernel/events/event-store.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { decideQuotaSettings, evolveQuotaSettings, type QuotaSettings, type QuotaSettingsReplaced, type SetQuota } from "./domain/quota.js";
import type { MeteringStore } from "./ports.js";
import { quotaInit } from "./proto-mapping.js";

/**
 * Metering's streams and its one event-sourced aggregate. Most of what metering writes to the
 * event store are facts (usage records, soft-cap notices, hard-cap blocks, overages) recorded
 * with the kernel's `recordFacts`; a tenant's quota settings (SetQuota → QuotaUpdated) are an
 * aggregate run by the kernel command helper.
 */

/** Event stream of a tenant's quota events (settings, and the soft cap, block and overage facts). */
export function quotaStreamId(tenantId: string): string {
  return `quota-${tenantId}`;
}

/** Event stream of a tenant's usage records. */
export function usageStreamId(tenantId: string): string {
  return `usage-${tenantId}`;
}

/** A tenant's quota settings as the kernel command helper drives them (key: tenant id). */
export type QuotaSettingsAggregate = Aggregate<QuotaSettings, QuotaSettingsReplaced, SetQuota, string>;

/**
 * The quota settings aggregate over the store's `metering.quotas` rows. Its version is the
 * version of `quota-<tenant>`, read under the tenant's lock: every writer of that stream
 * (settings and the admission facts) holds the lock, so the append at that version only
 * fails if something wrote the stream without it.
 */
export function quotaSettingsAggregate(store: MeteringStore): QuotaSettingsAggregate {
  return {
    streamId: quotaStreamId,
    async load(tx, tenantId) {
      const uow = store.within(tx);
      await uow.lockTenant(tenantId);
      const state = await uow.quotaSettings(tenantId);
      return { state, version: await streamVersion(tx, quotaStreamId(tenantId)) };
    },
    decide: decideQuotaSettings,
    evolve: evolveQuotaSettings,
    save: (tx, tenantId, settings) => store.within(tx).saveCustomQuota(tenantId, settings.custom, settings.updatedBy),
    toEvent: (e) =>
      eventOf(QuotaUpdatedSchema, {
        tenantId: e.tenantId,
        previousQuota: quotaInit(e.tenantId, e.previous),
        quota: quotaInit(e.tenantId, e.quota),
      }),
  };
}
