import { createHmac, timingSafeEqual } from "node:crypto";
import { QuotaHardCapBlockedSchema, QuotaOverageSchema, QuotaSoftCapReachedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import type { EventHandler } from "../kernel/events/ports.js";
import type { BillingWebhookSettings } from "./metering-settings.js";

/**
 * The billing webhook: quota events POSTed to a billing system as signed JSON. It is a durable
 * consumer of the quota events, so a failed delivery is retried by the bus with exponential
 * backoff and parked in the dead-letter queue after the last attempt (`nexus dlq list`,
 * `nexus dlq replay`) — it never blocks a run, because runs only append the events.
 *
 * Each delivery carries:
 * - `X-Nexus-Delivery`: the event id — the same on every retry and replay, so receivers dedupe;
 * - `X-Nexus-Timestamp`: Unix seconds when this attempt was signed;
 * - `X-Nexus-Signature`: `v1=` + hex HMAC-SHA256(secret, timestamp + "." + raw body). Receivers
 *   recompute it and reject timestamps older than a few minutes (replay protection);
 * - `X-Nexus-Event`: the audit type, e.g. `quota.soft_cap_reached`.
 */

/** Durable consumer name of the billing webhook. */
export const BILLING_WEBHOOK_CONSUMER = "metering-billing-webhook";
/** Its subject filter: metering events (only quota events are delivered). */
export const BILLING_WEBHOOK_SUBJECT = "metering.>";

/** Header names of a delivery. */
export const WEBHOOK_HEADERS = {
  delivery: "x-nexus-delivery",
  timestamp: "x-nexus-timestamp",
  signature: "x-nexus-signature",
  event: "x-nexus-event",
  attempt: "x-nexus-attempt",
} as const;

/** Event type → the type name the receiver sees (the audit taxonomy's). */
export const WEBHOOK_EVENT_TYPES: Readonly<Record<string, string>> = {
  [QuotaSoftCapReachedSchema.typeName]: "quota.soft_cap_reached",
  [QuotaHardCapBlockedSchema.typeName]: "quota.hard_cap_blocked",
  [QuotaOverageSchema.typeName]: "quota.overage_observed",
};

/** Hex HMAC-SHA256 over `<timestamp>.<body>`. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex");
}

/** What a receiver checks. */
export interface VerifyWebhookInput {
  secret: string;
  /** The raw request body, exactly as received. */
  body: string;
  /** `X-Nexus-Timestamp`. */
  timestamp: string | null | undefined;
  /** `X-Nexus-Signature`. */
  signature: string | null | undefined;
  /** Oldest accepted timestamp, in seconds before `now`. Default 300. */
  toleranceSeconds?: number;
  /** Default the wall clock. */
  now?: Date;
}

/**
 * Receiver side: true when the signature matches and the timestamp is fresh (within the
 * tolerance either way). Constant-time comparison.
 */
export function verifyWebhookSignature(input: VerifyWebhookInput): boolean {
  const { timestamp, signature } = input;
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp) || !signature.startsWith("v1=")) return false;
  const now = Math.floor((input.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - Number(timestamp)) > (input.toleranceSeconds ?? 300)) return false;
  const expected = Buffer.from(webhookSignature(input.secret, timestamp, input.body), "hex");
  const given = Buffer.from(signature.slice(3), "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/** Options of {@link billingWebhookHandler}. */
export interface BillingWebhookHandlerOptions {
  settings: BillingWebhookSettings;
  /** Wall clock of the signatures. */
  clock: () => Date;
  /** Default global fetch. */
  fetch?: typeof fetch;
}

/**
 * The consumer's handler: one POST per quota event; any answer but 2xx, a timeout or a
 * network error throws, which makes the bus retry later with backoff. Other metering events
 * are acknowledged without a delivery.
 */
export function billingWebhookHandler(options: BillingWebhookHandlerOptions): EventHandler {
  const { settings, clock } = options;
  const doFetch = options.fetch ?? fetch;
  return async (event) => {
    const type = WEBHOOK_EVENT_TYPES[event.type];
    if (type === undefined) return;
    // Deterministic body: identical on every attempt of this event.
    const body = JSON.stringify({
      id: event.eventId,
      type,
      occurred_at: event.occurredAt.toISOString(),
      tenant_id: event.metadata.tenantId ?? "",
      data: event.payload,
    });
    const timestamp = String(Math.floor(clock().getTime() / 1000));
    let res: Response;
    try {
      res = await doFetch(settings.url, {
        method: "POST",
        body,
        redirect: "error",
        signal: AbortSignal.timeout(settings.timeoutMs),
        headers: {
          "content-type": "application/json",
          "user-agent": "nexus-billing-webhook/1",
          [WEBHOOK_HEADERS.delivery]: event.eventId,
          [WEBHOOK_HEADERS.timestamp]: timestamp,
          [WEBHOOK_HEADERS.signature]: `v1=${webhookSignature(settings.secret, timestamp, body)}`,
          [WEBHOOK_HEADERS.event]: type,
          [WEBHOOK_HEADERS.attempt]: String(event.deliveryCount),
        },
      });
    } catch (err) {
      // Never echo the URL: it may carry credentials.
      const reason = (err as Error).name === "TimeoutError" ? `timed out after ${settings.timeoutMs} ms` : "unreachable";
      throw new Error(`billing webhook ${reason}`, { cause: err });
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.status < 200 || res.status >= 300) throw new Error(`billing webhook answered HTTP ${res.status}`);
  };
}
