import { ConfigError, type NexusConfig } from "../kernel/config.js";
import { DEFAULT_RUN_UNIT_RATES, type RunUnitRates } from "./domain/run-units.js";

/** Where and how quota events are pushed to a billing system. */
export interface BillingWebhookSettings {
  /** Receiver URL (NEXUS_BILLING_WEBHOOK_URL). */
  url: string;
  /** HMAC-SHA256 key (NEXUS_BILLING_WEBHOOK_SECRET). */
  secret: string;
  /** Per-attempt timeout (NEXUS_BILLING_WEBHOOK_TIMEOUT_MS). Default 2 000 ms. */
  timeoutMs: number;
}

/** Metering's tunables. */
export interface MeteringSettings {
  /** The run-unit price list. */
  rates: RunUnitRates;
  /** Soft-cap ratio of tenants without their own (NEXUS_QUOTA_SOFT_CAP_RATIO). Default 0.8. */
  defaultSoftCapRatio: number;
  /** How long an unsettled reservation holds capacity (NEXUS_QUOTA_RESERVATION_TTL_SECONDS). Default 900 s. */
  reservationTtlMs: number;
  /** How often due reservations are expired in the background. Default 30 000 ms. */
  expirySweepIntervalMs: number;
  /** Unset: no webhook. */
  billingWebhook: BillingWebhookSettings | undefined;
}

/** Defaults for tests and embedded use. */
export const DEFAULT_METERING_SETTINGS: MeteringSettings = Object.freeze({
  rates: DEFAULT_RUN_UNIT_RATES,
  defaultSoftCapRatio: 0.8,
  reservationTtlMs: 900_000,
  expirySweepIntervalMs: 30_000,
  billingWebhook: undefined,
});

/**
 * Metering's settings from the process configuration. A webhook URL without its secret is a
 * configuration error (unsigned deliveries would be forgeable), reported at start-up.
 */
export function meteringSettingsFromConfig(config: NexusConfig): MeteringSettings {
  if (config.billingWebhookUrl && !config.billingWebhookSecret) {
    throw new ConfigError([
      {
        variable: "NEXUS_BILLING_WEBHOOK_SECRET",
        message: "NEXUS_BILLING_WEBHOOK_SECRET is not set but NEXUS_BILLING_WEBHOOK_URL is: set the HMAC key the receiver verifies with",
      },
    ]);
  }
  return {
    rates: { tierMultipliers: config.runUnitTierMultipliers, toolCallOverhead: config.runUnitToolCallOverhead },
    defaultSoftCapRatio: config.quotaSoftCapRatio,
    reservationTtlMs: config.quotaReservationTtlSeconds * 1000,
    expirySweepIntervalMs: DEFAULT_METERING_SETTINGS.expirySweepIntervalMs,
    billingWebhook:
      config.billingWebhookUrl && config.billingWebhookSecret
        ? { url: config.billingWebhookUrl, secret: config.billingWebhookSecret, timeoutMs: config.billingWebhookTimeoutMs }
        : undefined,
  };
}
