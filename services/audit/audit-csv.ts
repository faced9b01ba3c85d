import type { ActorKind, AuditEntry, AuditOutcome, JsonObject } from "./domain/audit-entry.js";
import { canonicalJson } from "./domain/audit-entry.js";

/**
 * The CSV form of the audit trail (RFC 4180: comma-separated, fields quoted when they hold a
 * comma, quote, CR or LF, quotes doubled, CRLF line ends, one header row). Values are written
 * verbatim — no spreadsheet formula escaping — so an export round-trips exactly and its hash
 * chain can be recomputed from the file; open it in a spreadsheet as text.
 */

/** Column order of the export (the header row). Every field the hash covers is a column. */
export const AUDIT_CSV_COLUMNS = [
  "sequence",
  "id",
  "tenant_id",
  "occurred_at",
  "event_type",
  "outcome",
  "actor_kind",
  "actor_key_id",
  "actor_name",
  "actor_role",
  "action",
  "resource_type",
  "resource_id",
  "request_id",
  "correlation_id",
  "before",
  "after",
  "metadata",
  "source_event_id",
  "prev_hash",
  "hash",
] as const;

const CRLF = "\r\n";

function field(v: string): string {
  return /[",\r\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v;
}

const json = (v: JsonObject | undefined) => (v === undefined ? "" : canonicalJson(v));

/** The header line (with its CRLF). */
export function csvHeader(): string {
  return AUDIT_CSV_COLUMNS.join(",") + CRLF;
}

/** One entry as a CSV line (with its CRLF). */
export function csvRow(e: AuditEntry): string {
  const values: Record<(typeof AUDIT_CSV_COLUMNS)[number], string> = {
    sequence: String(e.sequence),
    id: e.id,
    tenant_id: e.tenantId,
    occurred_at: e.occurredAt.toISOString(),
    event_type: e.eventType,
    outcome: e.outcome,
    actor_kind: e.actor.kind,
    actor_key_id: e.actor.keyId,
    actor_name: e.actor.name,
    actor_role: e.actor.role,
    action: e.action,
    resource_type: e.resource.type,
    resource_id: e.resource.id,
    request_id: e.requestId,
    correlation_id: e.correlationId,
    before: json(e.before),
    after: json(e.after),
    metadata: json(e.metadata),
    source_event_id: e.sourceEventId,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
  return AUDIT_CSV_COLUMNS.map((c) => field(values[c])).join(",") + CRLF;
}

/** Parses an RFC 4180 document into rows of fields (header included). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cur = "";
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          cur += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else cur += ch;
      i++;
      continue;
    }
    if (ch === '"' && cur === "") quoted = true;
    else if (ch === ",") {
      row.push(cur);
      cur = "";
    } else if (ch === "\r" && text[i + 1] === "\n") {
      row.push(cur);
      rows.push(row);
      row = [];
      cur = "";
      i++;
    } else if (ch === "\n") {
      row.push(cur);
      rows.push(row);
      row = [];
      cur = "";
    } else cur += ch;
    i++;
  }
  if (quoted) throw new Error("CSV ends inside a quoted field");
  if (cur !== "" || row.length > 0) {
    row.push(cur);
    rows.push(row);
  }
  return rows;
}

const KINDS: readonly ActorKind[] = ["platform", "tenant", "system", "anonymous", "unknown"];

/** The columns of exports written before `tenant_id` became a column (read back with an explicit tenant). */
const LEGACY_COLUMNS = AUDIT_CSV_COLUMNS.filter((c) => c !== "tenant_id");

/**
 * Reads an exported document back into entries. The tenant comes from the `tenant_id` column;
 * `tenantId`, when given, must match it (a file of another tenant is refused), and is
 * required for exports written before the column existed. Throws on a wrong header or
 * malformed values.
 */
export function entriesFromCsv(text: string, tenantId?: string): AuditEntry[] {
  const [header, ...rows] = parseCsv(text);
  const columns: readonly string[] | undefined =
    header?.join(",") === AUDIT_CSV_COLUMNS.join(",")
      ? AUDIT_CSV_COLUMNS
      : header?.join(",") === LEGACY_COLUMNS.join(",")
        ? LEGACY_COLUMNS
        : undefined;
  if (!columns) throw new Error("not an audit export: unexpected header row");
  if (columns === LEGACY_COLUMNS && tenantId === undefined)
    throw new Error("this export has no tenant_id column: name the tenant it belongs to");
  const obj = (s: string): JsonObject | undefined => (s === "" ? undefined : (JSON.parse(s) as JsonObject));
  return rows.map((r, n) => {
    if (r.length !== columns.length) throw new Error(`row ${n + 2}: expected ${columns.length} fields, got ${r.length}`);
    const v = Object.fromEntries(columns.map((c, i) => [c, r[i] ?? ""])) as Record<(typeof AUDIT_CSV_COLUMNS)[number], string>;
    const kind = v.actor_kind as ActorKind;
    if (!KINDS.includes(kind)) throw new Error(`row ${n + 2}: unknown actor_kind ${v.actor_kind}`);
    const rowTenant = columns === LEGACY_COLUMNS ? tenantId! : v.tenant_id;
    if (tenantId !== undefined && rowTenant !== tenantId)
      throw new Error(`row ${n + 2}: entry of tenant "${rowTenant}", not "${tenantId}"`);
    return {
      id: v.id,
      sequence: Number(v.sequence),
      tenantId: rowTenant,
      occurredAt: new Date(v.occurred_at),
      eventType: v.event_type,
      actor: { kind, keyId: v.actor_key_id, name: v.actor_name, role: v.actor_role },
      action: v.action,
      resource: { type: v.resource_type, id: v.resource_id },
      outcome: v.outcome as AuditOutcome,
      requestId: v.request_id,
      correlationId: v.correlation_id,
      before: obj(v.before),
      after: obj(v.after),
      metadata: obj(v.metadata),
      sourceEventId: v.source_event_id,
      prevHash: v.prev_hash,
      hash: v.hash,
    };
  });
}
