import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ActorKind, type AuditEvent, AuditOutcome } from "../../../gen/nexus/audit/v1/audit_event_pb.js";
import {
  type AuditEventFilter,
  AuditEventFilterSchema,
  ListAuditEventsResponseSchema,
  VerifyAuditChainResponseSchema,
} from "../../../gen/nexus/audit/v1/audit_service_pb.js";
import { entriesFromCsv } from "../../audit/audit-csv.js";
import { ChainVerifier } from "../../audit/domain/audit-entry.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, parseInstant, printJson, when } from "./client-options.js";
import { resolveTenantId } from "./tenants.js";

/** Filter options shared by `audit list` and `audit export`. */
const FILTER_OPTIONS = {
  tenant: { type: "string" },
  type: { type: "string", multiple: true },
  actor: { type: "string" },
  outcome: { type: "string" },
  since: { type: "string" },
  until: { type: "string" },
  "resource-type": { type: "string" },
  "resource-id": { type: "string" },
} as const;

interface FilterValues {
  type?: string[] | undefined;
  actor?: string | undefined;
  outcome?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  "resource-type"?: string | undefined;
  "resource-id"?: string | undefined;
}

function filterOf(v: FilterValues): AuditEventFilter {
  const outcome =
    v.outcome === undefined
      ? AuditOutcome.UNSPECIFIED
      : v.outcome === "success"
        ? AuditOutcome.SUCCESS
        : v.outcome === "failure"
          ? AuditOutcome.FAILURE
          : undefined;
  if (outcome === undefined) throw new UsageError("--outcome must be success or failure");
  return create(AuditEventFilterSchema, {
    eventTypes: v.type ?? [],
    actorKeyId: v.actor ?? "",
    outcome,
    ...(v.since ? { startTime: timestampFromDate(parseInstant(v.since, "--since")) } : {}),
    ...(v.until ? { endTime: timestampFromDate(parseInstant(v.until, "--until")) } : {}),
    resourceType: v["resource-type"] ?? "",
    resourceId: v["resource-id"] ?? "",
  });
}

const KIND: Record<number, string> = {
  [ActorKind.PLATFORM]: "platform",
  [ActorKind.TENANT]: "tenant",
  [ActorKind.SYSTEM]: "system",
  [ActorKind.ANONYMOUS]: "anonymous",
};

function actorOf(e: AuditEvent): string {
  const a = e.actor;
  if (!a) return "-";
  const who = a.name ? `${a.name} (${a.keyId})` : a.keyId || KIND[a.kind] || "?";
  return a.role ? `${who} ${a.role}` : who;
}

/** `nexus audit list`. */
export const auditListCommand: Command = {
  path: ["audit", "list"],
  summary: "List audit log entries, newest first (tenant admin, or platform key; no --tenant = installation-wide chain)",
  usage:
    "nexus audit list [--tenant ID|SLUG] [--type rbac.forbidden]... [--actor KEY_ID] [--outcome success|failure] [--since ISO] [--until ISO] [--resource-type T] [--resource-id ID] [--limit 50] [--all] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, ...FILTER_OPTIONS, limit: { type: "string" }, all: { type: "boolean" } },
      strict: true,
    });
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError("--limit must be an integer from 1 to 500");
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const filter = filterOf(values);
    const events: AuditEvent[] = [];
    let pageToken = "";
    do {
      const page = await client.audit.listAuditEvents({ tenantId, filter, pageSize: limit, pageToken });
      events.push(...page.events);
      pageToken = values.all ? page.nextPageToken : "";
    } while (pageToken);
    if (values.json) {
      printJson(ListAuditEventsResponseSchema, create(ListAuditEventsResponseSchema, { events }));
      return 0;
    }
    if (events.length === 0) {
      console.log("no audit entries");
      return 0;
    }
    printTable(
      ["SEQ", "TIME", "TYPE", "OUTCOME", "ACTOR", "RESOURCE", "ACTION", "REQUEST"],
      events.map((e) => [
        String(e.sequence),
        when(e.occurredAt),
        e.eventType,
        e.outcome === AuditOutcome.FAILURE ? "failure" : "success",
        actorOf(e),
        e.resource?.type ? `${e.resource.type}/${e.resource.id}` : "-",
        e.action || "-",
        e.requestId || "-",
      ]),
    );
    return 0;
  },
};

/** `nexus audit export --csv`. */
export const auditExportCommand: Command = {
  path: ["audit", "export"],
  summary: "Export audit log entries as CSV, oldest first (streamed; to stdout or --output)",
  usage:
    "nexus audit export --csv [--output FILE] [--tenant ID|SLUG] [--type T]... [--actor KEY_ID] [--outcome success|failure] [--since ISO] [--until ISO]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, ...FILTER_OPTIONS, csv: { type: "boolean" }, output: { type: "string", short: "o" } },
      strict: true,
    });
    if (values.json) throw new UsageError("the export is CSV (--csv); use `nexus audit list --json` for JSON");
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const out = values.output ? createWriteStream(values.output) : process.stdout;
    let rows = 0;
    for await (const piece of client.audit.exportAuditEvents({ tenantId, filter: filterOf(values) })) {
      if (!out.write(piece.data)) await once(out, "drain");
      rows += piece.rowCount;
    }
    if (values.output) {
      await new Promise<void>((resolve, reject) =>
        (out as ReturnType<typeof createWriteStream>).end((err?: Error | null) => (err ? reject(err) : resolve())),
      );
      console.error(`wrote ${rows} entries to ${values.output}`);
    }
    return 0;
  },
};

/** `nexus audit verify`. */
export const auditVerifyCommand: Command = {
  path: ["audit", "verify"],
  summary: "Verify a tenant's audit hash chain on the server, or an exported CSV file offline (--file); exit 1 when broken",
  usage: "nexus audit verify [--tenant ID|SLUG] [--json]\n  nexus audit verify --file export.csv [--tenant TENANT_ID]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, tenant: { type: "string" }, file: { type: "string" } },
      strict: true,
    });
    if (values.file) {
      // The tenant is a column of the export; --tenant checks it (and names it for older exports without the column).
      const entries = entriesFromCsv(await readFile(values.file, "utf8"), values.tenant);
      const v = new ChainVerifier();
      for (const e of entries) if (v.check(e)) break;
      const broken = v.firstBrokenLink;
      const first = entries[0]?.sequence;
      if (first !== undefined && first !== 1) {
        console.error(`note: the export starts at sequence ${first}; a filtered export cannot be verified as a chain`);
      }
      console.log(
        broken
          ? `BROKEN at sequence ${broken.sequence} (${broken.problem}): expected ${broken.expectedHash}, found ${broken.actualHash}`
          : `ok: ${v.checked} entries, head ${v.headHash}`,
      );
      return broken ? 1 : 0;
    }
    const client = clientFrom(values);
    const tenantId = values.tenant ? await resolveTenantId(client, values.tenant) : "";
    const res = await client.audit.verifyAuditChain({ tenantId });
    if (values.json) printJson(VerifyAuditChainResponseSchema, res);
    else if (res.ok) console.log(`ok: ${res.entriesChecked} entries, head ${res.headHash}`);
    else {
      const b = res.firstBrokenLink;
      console.log(
        `BROKEN at sequence ${b?.sequence} (${b?.problem}), entry ${b?.eventId}: expected ${b?.expectedHash}, found ${b?.actualHash}`,
      );
    }
    return res.ok ? 0 : 1;
  },
};

/** The audit commands, in help order. */
export const auditCommands: readonly Command[] = [auditListCommand, auditExportCommand, auditVerifyCommand];
