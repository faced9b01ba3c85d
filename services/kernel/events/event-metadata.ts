import { context, isSpanContextValid, trace } from "@opentelemetry/api";
import { currentRequestMeta } from "../context.js";
import type { EventMetadata } from "./ports.js";

/**
 * Metadata for events appended right now: request and correlation ids from the request scope
 * (`currentRequestMeta()`), W3C trace context from the active OpenTelemetry span, then the
 * caller's explicit values on top. Fields without a value are left out.
 */
export function currentEventMetadata(explicit: EventMetadata = {}): EventMetadata {
  const meta: EventMetadata = {};
  const request = currentRequestMeta();
  if (request) {
    meta.requestId = request.requestId;
    meta.correlationId = request.correlationId;
  }
  const span = trace.getSpanContext(context.active());
  if (span && isSpanContextValid(span)) {
    const flags = (span.traceFlags & 0xff).toString(16).padStart(2, "0");
    meta.traceparent = `00-${span.traceId}-${span.spanId}-${flags}`;
    const state = span.traceState?.serialize();
    if (state) meta.tracestate = state;
  }
  for (const [k, v] of Object.entries(explicit) as [keyof EventMetadata, string | undefined][]) {
    if (v !== undefined && v !== "") meta[k] = v;
  }
  return meta;
}

const COLUMNS = {
  tenantId: "tenant_id",
  correlationId: "correlation_id",
  requestId: "request_id",
  traceparent: "traceparent",
  tracestate: "tracestate",
  actor: "actor",
  schemaVersion: "schema_version",
} as const satisfies Record<keyof EventMetadata, string>;

/** The stored (snake_case JSON) form of metadata. */
export function metadataToJson(meta: EventMetadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, column] of Object.entries(COLUMNS) as [keyof EventMetadata, string][]) {
    const v = meta[k];
    if (v !== undefined) out[column] = v;
  }
  return out;
}

/** Reads stored metadata back; unknown keys are ignored. */
export function metadataFromJson(json: unknown): EventMetadata {
  const meta: EventMetadata = {};
  if (typeof json !== "object" || json === null) return meta;
  const record = json as Record<string, unknown>;
  for (const [k, column] of Object.entries(COLUMNS) as [keyof EventMetadata, string][]) {
    const v = record[column];
    if (typeof v === "string") meta[k] = v;
  }
  return meta;
}
