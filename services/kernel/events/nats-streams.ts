import {
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { type NatsConnection, nanos } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";

/** Default JetStream stream holding every event subject (`<prefix>.>`). */
export const DEFAULT_EVENTS_STREAM = "NEXUS_EVENTS";
/** Default JetStream stream holding dead letters (`<prefix>_dlq.>`). */
export const DEFAULT_DLQ_STREAM = "NEXUS_DLQ";
/** Publish dedupe window: a re-publish with the same Nats-Msg-Id inside it is dropped. */
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

/** JetStream error codes Nexus reacts to (nats-server's `NewJS…Error` codes). */
export const JS_ERRORS = {
  CONSUMER_NOT_FOUND: JetStreamApiCodes.ConsumerNotFound,
  STREAM_NOT_FOUND: JetStreamApiCodes.StreamNotFound,
  /** "stream name already in use with a different configuration". */
  STREAM_NAME_IN_USE: 10058,
  /** "consumer already exists" (created concurrently by another replica). */
  CONSUMER_EXISTS: 10148,
  /** "no message found" (stream message get). */
  NO_MESSAGE_FOUND: 10037,
} as const;

/** The JetStream API error code of an error, if it is one. */
export function jsErrorCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/** The subject under which a consumer's dead letters are parked: `<prefix>_dlq.<consumer>`. */
export function dlqSubjectOf(prefix: string, consumer: string): string {
  return `${prefix}_dlq.${consumer}`;
}

/** Options of {@link connectNats}. */
export interface ConnectNatsOptions {
  /** e.g. "nats://127.0.0.1:4222"; several separated by commas. */
  servers: string | string[];
  /** Connection name shown by the server (monitoring). Default "nexus". */
  name?: string;
  token?: string;
  user?: string;
  pass?: string;
}

/**
 * Connects to NATS and keeps reconnecting forever (1 s apart): a service rides out a NATS
 * restart instead of dying; consumers and the relay resume on reconnect.
 */
export function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = typeof options.servers === "string" ? options.servers.split(",").map((s) => s.trim()) : options.servers;
  return connect({
    servers,
    name: options.name ?? "nexus",
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    ...(options.token ? { token: options.token } : {}),
    ...(options.user ? { user: options.user, pass: options.pass ?? "" } : {}),
  });
}

/** Options of {@link ensureStream}. */
export interface EnsureStreamOptions {
  name: string;
  subjects: string[];
  duplicateWindowMs?: number;
  /** 0 = keep forever (default). */
  maxAgeMs?: number;
  replicas?: number;
}

/** What {@link ensureStream} found or made. */
export interface EnsuredStream {
  /** The stream's creation time as the server reports it: it changes when the stream is recreated. */
  created: string;
  /** This call created it (it did not exist). */
  createdNow: boolean;
}

/**
 * Creates a file-backed, limits-retention stream unless it exists (replicas may race: the
 * loser reads the winner's stream). An existing stream must already cover the subjects —
 * silently rewriting a stream other parts of the system use is not this function's call.
 * Safe to call at any time: the relay and the consumers call it again at runtime, so a NATS
 * server restarted with empty storage gets its streams back without restarting Nexus.
 */
export async function ensureStream(jsm: JetStreamManager, options: EnsureStreamOptions): Promise<EnsuredStream> {
  const check = async (): Promise<EnsuredStream | undefined> => {
    try {
      const info = await jsm.streams.info(options.name);
      const missing = options.subjects.filter((s) => !info.config.subjects?.includes(s));
      if (missing.length > 0) {
        throw new Error(
          `NATS stream ${options.name} exists but does not capture ${missing.join(", ")} ` +
            `(it has ${info.config.subjects?.join(", ") || "no subjects"}); fix the stream or configure another name`,
        );
      }
      return { created: info.created, createdNow: false };
    } catch (err) {
      if (jsErrorCode(err) === JS_ERRORS.STREAM_NOT_FOUND) return undefined;
      throw err;
    }
  };
  const existing = await check();
  if (existing) return existing;
  try {
    const info = await jsm.streams.add({
      name: options.name,
      subjects: options.subjects,
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      duplicate_window: nanos(options.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
      max_age: nanos(options.maxAgeMs ?? 0),
      num_replicas: options.replicas ?? 1,
    });
    return { created: info.created, createdNow: true };
  } catch (err) {
    if (jsErrorCode(err) !== JS_ERRORS.STREAM_NAME_IN_USE) throw err;
    const raced = await check();
    if (!raced) throw err;
    return raced;
  }
}

/**
 * Deletes streams from the NATS server at `url`, on a connection of its own: the clean-up of
 * streams a test suite or a benchmark created on a shared server. A stream already gone, or a
 * server that is not reachable, is not an error (there is nothing to clean then).
 */
export async function deleteStreams(url: string, names: readonly string[]): Promise<void> {
  const nc = await connect({ servers: url, name: "nexus-stream-cleanup" }).catch(() => undefined);
  if (!nc) return;
  try {
    const jsm = await jetstreamManager(nc);
    for (const name of names) await jsm.streams.delete(name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}
