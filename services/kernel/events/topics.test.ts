import { describe, expect, it } from "vitest";
import { file_nexus_events_v1_agent_events } from "../../../gen/nexus/events/v1/agent_events_pb.js";
import { ApiKeyRevokedSchema, file_nexus_events_v1_auth_events } from "../../../gen/nexus/events/v1/auth_events_pb.js";
import { file_nexus_events_v1_ingestion_events } from "../../../gen/nexus/events/v1/ingestion_events_pb.js";
import { file_nexus_events_v1_metering_events } from "../../../gen/nexus/events/v1/metering_events_pb.js";
import { file_nexus_events_v1_retrieval_events } from "../../../gen/nexus/events/v1/retrieval_events_pb.js";
import { eventOf } from "./protobuf-event.js";
import {
  assertConsumerName,
  registerEventTopics,
  registeredTopic,
  subjectOf,
  topicFromProtoFile,
  topicMatcher,
  topicOfType,
  topicPattern,
} from "./topics.js";

const EVENT_FILES = [
  file_nexus_events_v1_auth_events,
  file_nexus_events_v1_metering_events,
  file_nexus_events_v1_ingestion_events,
  file_nexus_events_v1_retrieval_events,
  file_nexus_events_v1_agent_events,
];

describe("event topics", () => {
  it("maps the architecture's event types to <domain>.<snake_event>", () => {
    expect(topicOfType("nexus.events.v1.ApiKeyRevoked")).toBe("auth.api_key_revoked");
    expect(topicOfType("nexus.events.v1.UsageRecorded")).toBe("metering.usage_recorded");
    expect(topicOfType("nexus.events.v1.QuotaSoftCapReached")).toBe("metering.quota_soft_cap_reached");
    expect(topicOfType("nexus.events.v1.DocumentFailed")).toBe("ingestion.document_failed");
    expect(subjectOf("nexus", topicOfType("nexus.events.v1.RunCompleted"))).toBe("nexus.agent.run_completed");
  });

  it("agrees with the proto files for every registered event, and every registered event exists", () => {
    const declared = new Map<string, string>();
    for (const file of EVENT_FILES) {
      for (const message of file.messages) {
        declared.set(message.typeName, topicFromProtoFile(message.name, file.name) ?? "");
      }
    }
    for (const [type, topic] of declared) {
      const registered = registeredTopic(type);
      if (registered !== undefined) expect(registered, type).toBe(topic);
    }
    for (const type of ["nexus.events.v1.ApiKeyRevoked", "nexus.events.v1.UsageRecorded", "nexus.events.v1.RunCompleted"]) {
      expect(declared.has(type), type).toBe(true);
    }
  });

  it("gives protobuf events their subject without any registration", () => {
    expect(eventOf(ApiKeyRevokedSchema, {}).topic).toBe("auth.api_key_revoked");
    expect(topicFromProtoFile("DocumentFailed", "nexus/events/v1/ingestion_events")).toBe("ingestion.document_failed");
    expect(topicFromProtoFile("Struct", "google/protobuf/struct")).toBeUndefined();
  });

  it("takes registered topics and refuses invalid ones", () => {
    registerEventTopics({ "nexus.events.v1.AuditExported": "audit.exported" });
    expect(topicOfType("nexus.events.v1.AuditExported")).toBe("audit.exported");
    expect(() => registerEventTopics({ "x.Y": "no_domain" })).toThrow(/invalid event topic/);
    expect(() => registerEventTopics({ "x.Y": "auth.bad token" })).toThrow(/invalid event topic/);
    expect(() => topicOfType("nexus.events.v1.Nope")).toThrow(/no topic for event type/);
  });

  it("matches topics with NATS wildcard semantics", () => {
    const auth = topicMatcher("auth.>");
    expect(auth("auth.api_key_revoked")).toBe(true);
    expect(auth("auth.keys.revoked")).toBe(true);
    expect(auth("auth")).toBe(false);
    expect(auth("authx.api_key_revoked")).toBe(false);
    const failed = topicMatcher("*.document_failed");
    expect(failed("ingestion.document_failed")).toBe(true);
    expect(failed("a.b.document_failed")).toBe(false);
    expect(topicMatcher("auth.api_key_revoked")("auth.api_key_revokedx")).toBe(false);
    expect(topicMatcher(">")("anything.at_all")).toBe(true);
    expect(() => topicPattern("auth.>.x")).toThrow(/invalid subject filter/);
    expect(() => topicPattern("")).toThrow(/invalid subject filter/);
  });

  it("accepts consumer names that are valid JetStream durable names only", () => {
    expect(() => assertConsumerName("metering-usage_projector")).not.toThrow();
    expect(() => assertConsumerName("has.dot")).toThrow(/invalid consumer name/);
    expect(() => assertConsumerName("")).toThrow(/invalid consumer name/);
  });
});
