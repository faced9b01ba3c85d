/**
 * Payload formats of MQTT sources: JSON (one value), CSV (a header row, then one or more data
 * rows → an array of objects keyed by the header, values as strings for the mappings to convert)
 * and raw (base64 text; the bytes stay on `MqttMessage.raw`). A payload that does not parse is
 * not dropped: it becomes a {@link MalformedPayload} so the service can dead-letter it where it
 * can be inspected and replayed — nothing a device sent is lost silently.
 */
import { parse as parseCsv } from "csv-parse/sync";
import type { MqttFormat } from "../ports.js";

/** Larger payloads are handed over raw-marked as malformed instead of parsed (1 MiB). */
export const MAX_PARSED_PAYLOAD_BYTES = 1024 * 1024;

/**
 * The payload of a message that did not parse in the source's format. `reason` says why, for the
 * execution log; the bytes are on `MqttMessage.raw`. Serializes to
 * `{ malformed: true, format, reason, base64 }`.
 */
export class MalformedPayload {
  readonly malformed = true;
  constructor(
    readonly format: MqttFormat,
    readonly reason: string,
    readonly base64: string,
  ) {}

  toJSON(): { malformed: true; format: MqttFormat; reason: string; base64: string } {
    return { malformed: true, format: this.format, reason: this.reason, base64: this.base64 };
  }
}

/** True for a payload the source could not parse (see {@link MalformedPayload}). */
export function isMalformedPayload(payload: unknown): payload is MalformedPayload {
  return payload instanceof MalformedPayload;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses one payload in a format; never throws. */
export function parsePayload(format: MqttFormat, raw: Uint8Array): unknown {
  const base64 = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  if (format === "raw") return base64;
  if (raw.byteLength > MAX_PARSED_PAYLOAD_BYTES)
    return new MalformedPayload(format, `payload of ${raw.byteLength} bytes is larger than ${MAX_PARSED_PAYLOAD_BYTES}`, base64);
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return new MalformedPayload(format, "payload is not valid UTF-8", base64);
  }
  if (format === "json") {
    try {
      return JSON.parse(text);
    } catch (err) {
      return new MalformedPayload(format, `payload is not valid JSON: ${(err as Error).message}`, base64);
    }
  }
  try {
    const rows = parseCsv(text, { columns: true, skip_empty_lines: true, trim: true, bom: true }) as Record<string, string>[];
    if (rows.length === 0) return new MalformedPayload(format, "CSV payload has a header row but no data rows", base64);
    return rows;
  } catch (err) {
    return new MalformedPayload(format, `payload is not valid CSV: ${(err as Error).message}`, base64);
  }
}
