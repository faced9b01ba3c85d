import { headers } from "@nats-io/nats-core";
import { describe, expect, it } from "vitest";
import { copyHeaders, decodeEventMessage, EVENT_HEADERS, eventHeaders, headerValue, UndecodableMessageError } from "./nats-message.js";
import type { RecordedEvent } from "./ports.js";

const recorded: RecordedEvent = {
  position: 42n,
  eventId: "7f1c1a8e-8d0a-4b8e-9d6f-2b8f0f6c1e11",
  streamId: "api_key-k1",
  version: 3,
  type: "nexus.events.v1.ApiKeyRevoked",
  topic: "auth.api_key_revoked",
  payload: { keyId: "k1", reason: "leaked" },
  metadata: {
    tenantId: "t1",
    correlationId: "c1",
    requestId: "r1",
    actor: "key_admin",
    traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
  },
  occurredAt: new Date("2025-01-02T03:04:05.000Z"),
};

describe("event messages on NATS", () => {
  it("round-trips an event through headers and a JSON body", () => {
    const h = eventHeaders(recorded);
    expect(h.get(EVENT_HEADERS.EVENT_TYPE)).toBe("nexus.events.v1.ApiKeyRevoked");
    expect(h.get(EVENT_HEADERS.TENANT_ID)).toBe("t1");
    expect(h.get(EVENT_HEADERS.TRACEPARENT)).toBe(recorded.metadata.traceparent);
    const decoded = decodeEventMessage(
      { subject: "nexus.auth.api_key_revoked", headers: h, data: new TextEncoder().encode(JSON.stringify(recorded.payload)) },
      "nexus",
    );
    expect(decoded).toEqual({
      eventId: recorded.eventId,
      type: recorded.type,
      streamId: recorded.streamId,
      version: 3,
      payload: recorded.payload,
      metadata: recorded.metadata,
      subject: "nexus.auth.api_key_revoked",
      topic: "auth.api_key_revoked",
      occurredAt: recorded.occurredAt,
    });
  });

  it("refuses messages that are not Nexus events", () => {
    const data = new TextEncoder().encode("{}");
    expect(() => decodeEventMessage({ subject: "nexus.x.y", headers: headers(), data }, "nexus")).toThrow(UndecodableMessageError);
    const h = eventHeaders(recorded);
    expect(() => decodeEventMessage({ subject: "nexus.x.y", headers: h, data: new TextEncoder().encode("{nope") }, "nexus")).toThrow(
      /not JSON/,
    );
  });

  it("flattens and cuts header values, and copies headers without the omitted ones", () => {
    expect(headerValue("line one\r\nline two")).toBe("line one line two");
    expect(headerValue("x".repeat(2000)).length).toBe(1024);
    const h = eventHeaders(recorded);
    h.set(EVENT_HEADERS.MSG_ID, "m1");
    const copy = copyHeaders(h, ["nats-msg-id"]);
    expect(copy.has(EVENT_HEADERS.MSG_ID)).toBe(false);
    expect(copy.get(EVENT_HEADERS.EVENT_ID)).toBe(recorded.eventId);
  });
});
