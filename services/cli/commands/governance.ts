import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import type { Database } from "../../kernel/db/ports.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";

/** The database of DATABASE_URL (else the embedded one) with the governance tables migrated. */
async function withGovernance<T>(dataDir: string | undefined, fn: (db: Database) => Promise<T>): Promise<T> {
  // Loaded on use: `nexus help` and client commands start without the whole mesh.
  const { governanceMigrations } = await import("../../kernel/governance/index.js");
  const { migrateSchemas } = await import("../../kernel/service/index.js");
  const { migratePlatform } = await import("../../kernel/events/index.js");
  const { openDatabase } = await import("../../runtime/start-nexus.js");
  const config = loadConfig({ ...process.env, NEXUS_DATA_DIR: dataDir ?? process.env.NEXUS_DATA_DIR });
  const db = await openDatabase(config);
  try {
    // The event store too: changes are recorded as events (the audit trail picks them up).
    await migratePlatform(db);
    await migrateSchemas(db, [governanceMigrations]);
    return await fn(db);
  } finally {
    await db.close();
  }
}

const common = { tenant: { type: "string" }, "data-dir": { type: "string" }, json: { type: "boolean" } } as const;
const DB_NOTE = "(DATABASE_URL, else the embedded database of --data-dir)";

/** The actor a CLI change is recorded under: the operator's `--by` name. */
const cliActor = (by: string | undefined) => `cli:${by || process.env.USER || "operator"}`;

function requireTenant(tenant: string | undefined): string {
  if (!tenant) throw new UsageError("--tenant is required");
  return tenant;
}

/** `nexus governance hold place`. */
export const holdPlaceCommand: Command = {
  path: ["governance", "hold", "place"],
  summary: "Place a legal hold on a tenant, document, session, user or key: deletions and retention of it are refused (LEGAL_HOLD_ACTIVE)",
  usage: `nexus governance hold place --tenant TENANT --scope tenant|document|session|user|key [--subject ID] [--reason TEXT] [--by NAME] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { placeLegalHoldRecorded, HOLD_SCOPES } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({
      args,
      options: { ...common, scope: { type: "string" }, subject: { type: "string" }, reason: { type: "string" }, by: { type: "string" } },
      strict: true,
    });
    const tenantId = requireTenant(values.tenant);
    const scope = values.scope as (typeof HOLD_SCOPES)[number] | undefined;
    if (!scope || !HOLD_SCOPES.includes(scope)) throw new UsageError(`--scope must be one of ${HOLD_SCOPES.join(", ")}`);
    if (scope !== "tenant" && !values.subject) throw new UsageError(`--subject (the ${scope} id) is required for a ${scope} hold`);
    const hold = await withGovernance(values["data-dir"], (db) =>
      placeLegalHoldRecorded(db, cliActor(values.by), {
        tenantId,
        scope,
        ...(values.subject ? { subjectId: values.subject } : {}),
        reason: values.reason ?? "",
      }),
    );
    if (values.json) console.log(JSON.stringify(hold, null, 2));
    else console.log(`legal hold ${hold.holdId} placed on ${scope}${hold.subjectId ? ` ${hold.subjectId}` : ""} of tenant ${tenantId}`);
    return 0;
  },
};

/** `nexus governance hold release`. */
export const holdReleaseCommand: Command = {
  path: ["governance", "hold", "release"],
  summary: "Release a legal hold (it stays listed with --all, for the record)",
  usage: `nexus governance hold release --tenant TENANT --hold HOLD_ID [--by NAME]   ${DB_NOTE}`,
  async run(args) {
    const { releaseLegalHoldRecorded } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, hold: { type: "string" }, by: { type: "string" } }, strict: true });
    const tenantId = requireTenant(values.tenant);
    if (!values.hold) throw new UsageError("--hold is required");
    await withGovernance(values["data-dir"], (db) => releaseLegalHoldRecorded(db, cliActor(values.by), tenantId, values.hold!));
    console.log(`legal hold ${values.hold} released`);
    return 0;
  },
};

/** `nexus governance holds`. */
export const holdsCommand: Command = {
  path: ["governance", "holds"],
  summary: "List a tenant's legal holds (active ones; --all includes released)",
  usage: `nexus governance holds --tenant TENANT [--all] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { listLegalHolds } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, all: { type: "boolean" } }, strict: true });
    const tenantId = requireTenant(values.tenant);
    const holds = await withGovernance(values["data-dir"], (db) => listLegalHolds(db, tenantId, values.all ?? false));
    if (values.json) console.log(JSON.stringify(holds, null, 2));
    else if (holds.length === 0) console.log("no legal holds");
    else
      printTable(
        ["HOLD", "SCOPE", "SUBJECT", "REASON", "PLACED", "BY", "RELEASED"],
        holds.map((h) => [
          h.holdId,
          h.scope,
          h.subjectId || "-",
          h.reason,
          h.placedAt.toISOString(),
          h.placedBy,
          h.releasedAt?.toISOString() ?? "-",
        ]),
      );
    return 0;
  },
};

/** `nexus governance retention set`. */
export const retentionSetCommand: Command = {
  path: ["governance", "retention", "set"],
  summary: "Set a tenant's retention policy for a category (applied by the owning service's periodic task)",
  usage: `nexus governance retention set --tenant TENANT --category sessions|documents|audit|usage --max-age-days N [--action delete|anonymize] [--by NAME]   ${DB_NOTE}`,
  async run(args) {
    const { setRetentionPolicyRecorded, APPLIED_RETENTION_CATEGORIES } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({
      args,
      options: {
        ...common,
        category: { type: "string" },
        "max-age-days": { type: "string" },
        action: { type: "string" },
        by: { type: "string" },
      },
      strict: true,
    });
    const tenantId = requireTenant(values.tenant);
    const category = values.category as (typeof APPLIED_RETENTION_CATEGORIES)[number] | undefined;
    if (!category) throw new UsageError(`--category is required (${APPLIED_RETENTION_CATEGORIES.join(", ")})`);
    const days = Number(values["max-age-days"]);
    if (!Number.isInteger(days) || days < 1) throw new UsageError("--max-age-days must be a whole number of days, at least 1");
    const action = values.action ?? "delete";
    if (action !== "delete" && action !== "anonymize") throw new UsageError("--action must be delete or anonymize");
    await withGovernance(values["data-dir"], (db) =>
      setRetentionPolicyRecorded(db, cliActor(values.by), { tenantId, category, maxAgeDays: days, action }),
    );
    console.log(`tenant ${tenantId}: ${category} older than ${days} day(s) will be ${action === "delete" ? "deleted" : "anonymized"}`);
    return 0;
  },
};

/** `nexus governance retention clear`. */
export const retentionClearCommand: Command = {
  path: ["governance", "retention", "clear"],
  summary: "Remove a tenant's retention policy for a category (its data is then kept)",
  usage: `nexus governance retention clear --tenant TENANT --category sessions|documents|audit|usage [--by NAME]   ${DB_NOTE}`,
  async run(args) {
    const { clearRetentionPolicyRecorded } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, category: { type: "string" }, by: { type: "string" } }, strict: true });
    const tenantId = requireTenant(values.tenant);
    if (!values.category) throw new UsageError("--category is required");
    const category = values.category as "sessions";
    await withGovernance(values["data-dir"], (db) => clearRetentionPolicyRecorded(db, cliActor(values.by), tenantId, category));
    console.log(`retention policy for ${category} of tenant ${tenantId} removed`);
    return 0;
  },
};

/** `nexus governance retention list`. */
export const retentionListCommand: Command = {
  path: ["governance", "retention", "list"],
  summary: "List retention policies",
  usage: `nexus governance retention list [--tenant TENANT] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { listRetentionPolicies } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: common, strict: true });
    const policies = await withGovernance(values["data-dir"], (db) => listRetentionPolicies(db, values.tenant));
    if (values.json) console.log(JSON.stringify(policies, null, 2));
    else if (policies.length === 0) console.log("no retention policies (everything is kept)");
    else
      printTable(
        ["TENANT", "CATEGORY", "MAX AGE (DAYS)", "ACTION"],
        policies.map((p) => [p.tenantId, p.category, String(p.maxAgeDays), p.action]),
      );
    return 0;
  },
};

/** `nexus governance retention reports`. */
export const retentionReportsCommand: Command = {
  path: ["governance", "retention", "reports"],
  summary: "What retention runs removed and kept, newest first",
  usage: `nexus governance retention reports [--tenant TENANT] [--limit 50] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { listRetentionReports } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, limit: { type: "string" } }, strict: true });
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError("--limit must be an integer from 1 to 1000");
    const reports = await withGovernance(values["data-dir"], (db) => listRetentionReports(db, values.tenant, limit));
    if (values.json) console.log(JSON.stringify(reports, null, 2));
    else if (reports.length === 0) console.log("no retention reports");
    else
      printTable(
        ["RAN", "TENANT", "TABLE", "ACTION", "EXPIRED", "REMOVED", "HELD", "WHY NOT"],
        reports.map((r) => [
          r.ranAt.toISOString(),
          r.tenantId,
          r.target,
          r.action,
          String(r.expired),
          String(r.removed),
          String(r.held),
          r.skippedReason,
        ]),
      );
    return 0;
  },
};

/** `nexus governance dsar verify`: checks a data-subject export archive's digest and keyring signature. */
export const dsarVerifyCommand: Command = {
  path: ["governance", "dsar", "verify"],
  summary: "Verify a data-subject export archive (DownloadDataSubjectArchive): its SHA-256 and the keyring's signature",
  usage: `nexus governance dsar verify --file ARCHIVE.json [--data-dir .nexus]   (DATABASE_URL, master keys as the services have them)`,
  async run(args) {
    const { readFile } = await import("node:fs/promises");
    const { verifySubjectArchive } = await import("../../kernel/governance/index.js");
    const { withKeyring } = await import("./keyring.js");
    const { values } = parseArgs({ args, options: { file: { type: "string" }, "data-dir": { type: "string" } }, strict: true });
    if (!values.file) throw new UsageError("--file ARCHIVE.json is required");
    let archive: Parameters<typeof verifySubjectArchive>[1];
    try {
      archive = JSON.parse(await readFile(values.file, "utf8")) as typeof archive;
    } catch (err) {
      console.error(`NOT VERIFIED: ${values.file} is not JSON (${(err as Error).message})`);
      return 1;
    }
    const why = await withKeyring(values["data-dir"], (_db, keyring) => verifySubjectArchive(keyring, archive));
    if (why) {
      console.error(`NOT VERIFIED: ${why}`);
      return 1;
    }
    const parts = Object.entries(archive.content.parts).map(([p, items]) => `${p} ${items.length}`);
    console.log(
      `verified: export ${archive.requestId} of ${archive.content.subject.scope} ${archive.content.subject.id} (tenant ${archive.tenantId}): ${parts.join(", ")}`,
    );
    return 0;
  },
};

/** One line per part of a request: what it exported/removed/kept, or why it failed. */
function printSubjectRequest(r: import("../../kernel/governance/index.js").SubjectRequest): void {
  console.log(
    `${r.requestId}  ${r.kind} of ${r.subject.scope} ${r.subject.id}  ${r.status.toUpperCase()}${r.error ? `  error: ${r.error}` : ""}`,
  );
  for (const [part, s] of Object.entries(r.summary))
    console.log(
      `  ${part}: ${
        s.error
          ? `FAILED after ${s.attempts ?? 0} attempt(s): ${s.error}`
          : `${s.items} item(s)${s.removed !== undefined ? `, removed ${s.removed}, kept ${s.kept ?? 0}` : ""}${s.note ? ` (${s.note})` : ""}`
      }`,
    );
}

/** `nexus governance dsar list`: the tenant's data-subject requests, their status and the error of each failed part. */
export const dsarListCommand: Command = {
  path: ["governance", "dsar", "list"],
  summary: "List a tenant's data-subject requests: status, and per part what was done or why it failed",
  usage: `nexus governance dsar list --tenant TENANT [--request ID] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { getSubjectRequest, listSubjectRequests } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, request: { type: "string" } }, strict: true });
    const tenantId = requireTenant(values.tenant);
    const requests = await withGovernance(values["data-dir"], async (db) =>
      values.request ? [await getSubjectRequest(db, tenantId, values.request)] : listSubjectRequests(db, tenantId),
    );
    if (values.json) console.log(JSON.stringify(requests, null, 2));
    else if (requests.length === 0) console.log(`no data-subject requests in tenant ${tenantId}`);
    else for (const r of requests) printSubjectRequest(r);
    return 0;
  },
};

/** `nexus governance dsar retry`: restarts a failed data-subject request. */
export const dsarRetryCommand: Command = {
  path: ["governance", "dsar", "retry"],
  summary: "Restart a FAILED data-subject request: its failed parts run again, the parts done are kept",
  usage: `nexus governance dsar retry --tenant TENANT --request ID [--by NAME] [--json]   ${DB_NOTE}`,
  async run(args) {
    const { retrySubjectRequestRecorded } = await import("../../kernel/governance/index.js");
    const { values } = parseArgs({ args, options: { ...common, request: { type: "string" }, by: { type: "string" } }, strict: true });
    const tenantId = requireTenant(values.tenant);
    if (!values.request) throw new UsageError("--request is required");
    const r = await withGovernance(values["data-dir"], (db) =>
      retrySubjectRequestRecorded(db, cliActor(values.by), tenantId, values.request!),
    );
    if (values.json) console.log(JSON.stringify(r, null, 2));
    else console.log(`data-subject request ${r.requestId} is running again`);
    return 0;
  },
};

export const governanceCommands: readonly Command[] = [
  dsarListCommand,
  dsarRetryCommand,
  dsarVerifyCommand,
  holdPlaceCommand,
  holdReleaseCommand,
  holdsCommand,
  retentionSetCommand,
  retentionClearCommand,
  retentionListCommand,
  retentionReportsCommand,
];
