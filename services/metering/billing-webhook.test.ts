import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verifyWebhookSignature, webhookSignature } from "./billing-webhook.js";

describe("billing webhook signatures", () => {
  const now = new Date("2025-03-10T12:00:00Z");
  const ts = String(Math.floor(now.getTime() / 1000));
  const body = '{"id":"e1","type":"quota.soft_cap_reached"}';

  it("is hex HMAC-SHA256 over timestamp.body", () => {
    expect(webhookSignature("s", ts, body)).toBe(createHmac("sha256", "s").update(`${ts}.${body}`).digest("hex"));
  });

  it("verifies fresh, untampered deliveries only", () => {
    const signature = `v1=${webhookSignature("s", ts, body)}`;
    expect(verifyWebhookSignature({ secret: "s", body, timestamp: ts, signature, now })).toBe(true);
    expect(verifyWebhookSignature({ secret: "s", body: `${body} `, timestamp: ts, signature, now })).toBe(false);
    expect(verifyWebhookSignature({ secret: "s", body, timestamp: String(Number(ts) + 1), signature, now })).toBe(false);
    expect(verifyWebhookSignature({ secret: "s", body, timestamp: ts, signature, now: new Date(now.getTime() + 301_000) })).toBe(false);
    expect(verifyWebhookSignature({ secret: "s", body, timestamp: ts, signature: signature.slice(0, -2), now })).toBe(false);
    expect(verifyWebhookSignature({ secret: "s", body, timestamp: null, signature, now })).toBe(false);
  });
});
