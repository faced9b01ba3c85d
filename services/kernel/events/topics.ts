/**
 * Event type → NATS subject mapping.
 *
 * An event's subject is `<prefix>.<topic>`, where the prefix is configurable (default "nexus",
 * tests use unique prefixes) and the topic is `<domain>.<event>` in snake_case:
 *
 *   nexus.events.v1.ApiKeyRevoked   →  nexus.auth.api_key_revoked
 *   nexus.events.v1.UsageRecorded   →  nexus.metering.usage_recorded
 *
 * The topic comes from the event itself (`NewEvent.topic` / `eventOf(..., { topic })`), else
 * from this registry, else — for `eventOf` — from the proto file that declares the message:
 * payloads live in `nexus.events.v1`, one file per owning domain (`auth_events.proto` →
 * "auth"). A plain type name without any of these is an error rather than a guess.
 */

/** Default first subject token. */
export const DEFAULT_SUBJECT_PREFIX = "nexus";

const TOKEN = /^[A-Za-z0-9_-]+$/;
const EVENTS_PACKAGE = "nexus.events.v1";

function snakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();
}

/** Event payloads of proto/nexus/events/v1, by owning domain (the `<domain>_events.proto` file). */
const KNOWN_EVENTS: Record<string, readonly string[]> = {
  auth: [
    "TenantCreated",
    "TenantSuspended",
    "TenantResumed",
    "PlanChanged",
    "EntitlementOverridesChanged",
    "TenantDisplayNameChanged",
    "ApiKeyIssued",
    "ApiKeyRotated",
    "ApiKeyRevoked",
    "ApiKeyRoleChanged",
    "ApiKeyReactivated",
    "AccessDenied",
    "RbacForbidden",
  ],
  metering: [
    "UsageRecorded",
    "UsageRecordBackfilled",
    "UsageRecordsPurged",
    "QuotaSoftCapReached",
    "QuotaHardCapBlocked",
    "QuotaOverage",
    "QuotaUpdated",
  ],
  ingestion: ["DocumentQueued", "DocumentIngested", "DocumentFailed", "DocumentDeleted"],
  retrieval: ["CorpusCreated", "CorpusUpdated", "CorpusDeleted"],
  agent: ["RunStarted", "RunCompleted", "RunFailed", "RunCancelled"],
  // WorkflowMessageAccepted has no fixed topic: each goes to its workflow's `integration.wf.<id>`.
  governance: [
    "LegalHoldPlaced",
    "LegalHoldReleased",
    "RetentionPolicyChanged",
    "DataSubjectRequestCreated",
    "DataSubjectRequestApproved",
    "DataSubjectRequestCompleted",
    "DataSubjectRequestFailed",
    "DataSubjectRequestRetried",
    "GovernanceSettingsChanged",
  ],
  integration: [
    "SenderAppChanged",
    "DestinationChanged",
    "WorkflowChanged",
    "MqttSourceChanged",
    "DeliveryRequested",
    "MqttPayloadRejected",
    "EdgeAgentChanged",
  ],
};

const registry = new Map<string, string>();
for (const [domain, names] of Object.entries(KNOWN_EVENTS)) {
  for (const name of names) registry.set(`${EVENTS_PACKAGE}.${name}`, `${domain}.${snakeCase(name)}`);
}

/** Throws unless `topic` is `<token>.<token>[.<token>…]` with NATS-safe tokens. */
export function assertTopic(topic: string): void {
  const tokens = topic.split(".");
  if (tokens.length < 2 || !tokens.every((t) => TOKEN.test(t))) {
    throw new Error(`invalid event topic ${JSON.stringify(topic)}: expected "<domain>.<event>" of [A-Za-z0-9_-] tokens`);
  }
}

/** Consumer names double as JetStream durable names and DLQ subject tokens. */
const CONSUMER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Throws unless `name` is a valid consumer name: [A-Za-z0-9_-], 1 to 64 characters. */
export function assertConsumerName(name: string): void {
  if (!CONSUMER_NAME.test(name)) throw new Error(`invalid consumer name ${JSON.stringify(name)}: [A-Za-z0-9_-], 1-64 chars`);
}

/** Throws unless `prefix` is one NATS-safe token. */
export function assertSubjectPrefix(prefix: string): void {
  if (!TOKEN.test(prefix)) throw new Error(`invalid subject prefix ${JSON.stringify(prefix)}: one [A-Za-z0-9_-] token`);
}

/**
 * Registers (or overrides) topics for event types, e.g.
 * `registerEventTopics({ "nexus.events.v1.ApiKeyRevoked": "auth.api_key_revoked" })`.
 */
export function registerEventTopics(topics: Record<string, string>): void {
  for (const [type, topic] of Object.entries(topics)) {
    assertTopic(topic);
    registry.set(type, topic);
  }
}

/** The registered topic of an event type; throws with a how-to-fix message when unknown. */
export function topicOfType(type: string): string {
  const topic = registry.get(type);
  if (topic === undefined) {
    throw new Error(
      `no topic for event type "${type}": pass { topic: "<domain>.<event>" } with the event ` +
        `or call registerEventTopics({ "${type}": "<domain>.<event>" }) at start-up`,
    );
  }
  return topic;
}

/** The registered topic of an event type, or undefined. */
export function registeredTopic(type: string): string | undefined {
  return registry.get(type);
}

/**
 * The topic implied by where a message is declared: a message `Name` of file
 * `.../<domain>_events.proto` → `<domain>.<snake_name>`; undefined for other files.
 */
export function topicFromProtoFile(messageName: string, fileName: string): string | undefined {
  const domain = /(?:^|\/)([a-z][a-z0-9]*)_events(?:\.proto)?$/.exec(fileName)?.[1];
  return domain ? `${domain}.${snakeCase(messageName)}` : undefined;
}

/** `<prefix>.<topic>`. */
export function subjectOf(prefix: string, topic: string): string {
  return `${prefix}.${topic}`;
}

/**
 * Translates a NATS-style topic filter ("auth.>", "*.document_failed", "auth.api_key_revoked")
 * into an anchored regular expression over topics (subjects without the prefix). The syntax
 * is valid both in JavaScript and in PostgreSQL (`topic ~ pattern`).
 */
export function topicPattern(filter: string): string {
  const tokens = filter.split(".");
  const valid = tokens.every((t, i) => t === "*" || (t === ">" && i === tokens.length - 1) || TOKEN.test(t));
  if (!valid || filter === "") {
    throw new Error(`invalid subject filter ${JSON.stringify(filter)}: tokens, "*" for one token, ">" last for the rest`);
  }
  const pattern = tokens.map((t) => (t === "*" ? "[^.]+" : t === ">" ? ".+" : t)).join("\\.");
  return `^${pattern}$`;
}

/** A predicate over topics for a NATS-style filter (see {@link topicPattern}). */
export function topicMatcher(filter: string): (topic: string) => boolean {
  const regex = new RegExp(topicPattern(filter));
  return (topic) => regex.test(topic);
}
