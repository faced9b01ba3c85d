import { type DescMessage, type MessageShape, toJsonString } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { createNexusClient, type NexusClient } from "../../client/create-nexus-client.js";
import { UsageError } from "../command.js";

/**
 * Shared pieces of the client commands (tenants, keys, whoami): the SDK client from
 * NEXUS_URL / NEXUS_API_KEY (or --url), JSON output, durations and timestamps.
 */

/** The `--url` and `--json` options every client command takes. */
export const CLIENT_OPTIONS = {
  url: { type: "string" },
  json: { type: "boolean" },
} as const;

/** How the CLI retries refusals that did no work (RATE_LIMITED, SERVICE_BUSY…). */
export const CLI_RETRY = { maxAttempts: 5, maxDelayMs: 10_000 } as const;

/** A client for NEXUS_URL (or `--url`) with NEXUS_API_KEY; refuses to run without a key. */
export function clientFrom(values: { url?: string | undefined }): NexusClient {
  const apiKey = process.env.NEXUS_API_KEY;
  if (!apiKey) throw new UsageError("NEXUS_API_KEY is not set: export the API key to use (nexus dev prints one on its first start)");
  // Calls refused before any work (rate limits, a busy replica) are retried as the server asks.
  return createNexusClient({ ...(values.url ? { baseUrl: values.url } : {}), apiKey, retry: CLI_RETRY });
}

/** Prints a message as protobuf JSON. */
export function printJson<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
  console.log(toJsonString(schema, message, { prettySpaces: 2 }));
}

/** "2026-01-02T03:04:05.000Z", or "-" when unset. */
export function when(ts: Timestamp | undefined): string {
  return ts ? timestampDate(ts).toISOString() : "-";
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "90s", "15m", "24h", "7d" (or bare seconds) into milliseconds. */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m?.[1]) throw new UsageError(`${option} must be a duration like 90s, 15m, 24h or 7d`);
  return Number(m[1]) * (UNITS[m[2] || "s"] ?? 1_000);
}

/** Parses an ISO 8601 instant. */
export function parseInstant(text: string, option: string): Date {
  const d = new Date(text);
  if (Number.isNaN(d.getTime())) throw new UsageError(`${option} must be an ISO 8601 time like 2027-01-01T00:00:00Z`);
  return d;
}

/**
 * A comma list of names (`--status queued,failed`) mapped through `table` (lower-case name →
 * value); an unknown name is a UsageError with `message`. Empty or absent → [].
 */
export function parseNameList<T>(raw: string | undefined, table: Readonly<Record<string, T>>, message: string): T[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "")
    .map((s) => {
      const v = table[s];
      if (v === undefined) throw new UsageError(message);
      return v;
    });
}
