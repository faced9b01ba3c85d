/**
 * JetStream streams of one test suite. Suites that run a bus give it their own event and
 * dead-letter streams, named from the suite's `uniqueToken()`, so suites running in parallel on the
 * shared NATS server never see each other's events; this module names those streams and deletes
 * them when the suite ends.
 */
import { deleteStreams } from "../../services/kernel/events/nats-streams.js";
import { TEST_LEXICAL_ONLY, TEST_NATS_URL, uniqueToken } from "./services.js";

/** The event and dead-letter stream names of the suite whose token is `token`. */
export function suiteStreams(token: string): { stream: string; dlqStream: string } {
  return { stream: `EVENTS_${token}`, dlqStream: `DLQ_${token}` };
}

/**
 * The environment of `nexus serve` processes of one suite on `databaseUrl`: the test NATS with
 * the suite's own streams and subject prefix, lexical-only when the test PostgreSQL lacks
 * pgvector, no telemetry, warnings only.
 */
export function suiteServeEnv(databaseUrl: string, token: string, subjectPrefix: string): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    NATS_URL: TEST_NATS_URL,
    NEXUS_SUBJECT_PREFIX: uniqueToken(subjectPrefix),
    NEXUS_NATS_STREAM: suiteStreams(token).stream,
    NEXUS_DLQ_STREAM: suiteStreams(token).dlqStream,
    NEXUS_LEXICAL_ONLY: TEST_LEXICAL_ONLY,
    OTEL_SDK_DISABLED: "true",
    LOG_LEVEL: "warn",
  };
}

/** The environment that bootstraps `key` as the platform key of a `nexus serve --service auth`. */
export function bootstrapKeyEnv(key: { keyId: string; digest: Uint8Array }): Record<string, string> {
  return { NEXUS_BOOTSTRAP_KEY_ID: key.keyId, NEXUS_BOOTSTRAP_KEY_SHA256: Buffer.from(key.digest).toString("hex") };
}

/**
 * Deletes the suite's streams: `EVENTS_<token>` and `DLQ_<token>` (see {@link suiteStreams}), or
 * exactly `names` when given. Streams already gone are fine, and so is a NATS server that is not
 * there (the suite was skipped, or a fault test stopped it): teardown must not hide the failure
 * that matters. Uses its own connection, since the suite's bus has usually drained its own.
 */
export async function deleteSuiteStreams(token: string, names: readonly string[] = Object.values(suiteStreams(token))): Promise<void> {
  await deleteStreams(TEST_NATS_URL, names);
}
