import { parseArgs } from "node:util";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { json, withDatabase } from "./projections.js";

const STATUS_NAMES = ["unspecified", "running", "compensating", "completed", "compensated", "failed"] as const;
const STEP_STATES = ["unspecified", "running", "failed", "completed", "compensated"] as const;

/** Read through the API (NEXUS_API_KEY, NEXUS_URL or --url) rather than the database. */
const viaApi = (values: { api?: boolean | undefined; url?: string | undefined }) => values.api === true || values.url !== undefined;

/** `nexus sagas list`: the newest sagas with their status. */
export const sagasListCommand: Command = {
  path: ["sagas", "list"],
  summary: "List sagas (multi-step processes such as tenant offboarding), newest first, with their status",
  usage: "nexus sagas list [--limit N] [--api [--url URL] [--tenant ID] [--name NAME]] [--json]   (--api: ListSagas with NEXUS_API_KEY)",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        api: { type: "boolean" },
        limit: { type: "string" },
        tenant: { type: "string" },
        name: { type: "string" },
      },
      strict: true,
    });
    const limit = values.limit === undefined ? 50 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError("--limit must be an integer from 1 to 1000");
    if (viaApi(values)) {
      if (limit > 100) throw new UsageError("--limit must be at most 100 with --api");
      const { ListSagasResponseSchema } = await import("../../../gen/nexus/eventstore/v1/event_store_service_pb.js");
      const res = await clientFrom(values).events.listSagas({ tenantId: values.tenant ?? "", name: values.name ?? "", pageSize: limit });
      if (values.json) {
        printJson(ListSagasResponseSchema, res);
        return 0;
      }
      printTable(
        ["SAGA", "NAME", "STATUS", "TENANT", "STARTED", "UPDATED", "EVENTS"],
        res.sagas.map((s) => [
          s.sagaId,
          s.name,
          STATUS_NAMES[s.status] ?? "",
          s.tenantId,
          when(s.startedAt),
          when(s.updatedAt),
          String(s.version),
        ]),
      );
      return 0;
    }
    const { listSagas } = await import("../../kernel/sagas/index.js");
    const sagas = await withDatabase((db) => listSagas(db, limit));
    if (values.json) {
      console.log(json(sagas));
      return 0;
    }
    printTable(
      ["SAGA", "NAME", "STATUS", "TENANT", "STARTED", "UPDATED", "EVENTS"],
      sagas.map((s) => [
        s.sagaId,
        s.name,
        s.status,
        s.tenantId ?? "",
        s.startedAt.toISOString(),
        s.updatedAt.toISOString(),
        String(s.version),
      ]),
    );
    return 0;
  },
};

/** `nexus sagas status <id>`: one saga's state folded from its stream. */
export const sagasStatusCommand: Command = {
  path: ["sagas", "status"],
  summary: "Show a saga's status: steps completed and compensated, attempts, the step in flight, why it compensates or failed",
  usage: "nexus sagas status <saga-id> [--api [--url URL]] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, api: { type: "boolean" } },
      allowPositionals: true,
      strict: true,
    });
    const id = positionals[0];
    if (positionals.length !== 1 || id === undefined) throw new UsageError("give one saga id (see `nexus sagas list`)");
    if (viaApi(values)) {
      const { GetSagaResponseSchema } = await import("../../../gen/nexus/eventstore/v1/event_store_service_pb.js");
      const res = await clientFrom(values).events.getSaga({ sagaId: id });
      const s = res.saga;
      if (values.json || !s) {
        printJson(GetSagaResponseSchema, res);
        return s && STATUS_NAMES[s.status] === "failed" ? 1 : 0;
      }
      printTable(
        ["FIELD", "VALUE"],
        [
          ["saga", s.sagaId],
          ["name", s.name],
          ["status", STATUS_NAMES[s.status] ?? ""],
          ["tenant", s.tenantId],
          ["started", when(s.startedAt)],
          ["deadline", when(s.deadline)],
          ["in flight", s.inFlight],
          ["point of no return passed", s.pointOfNoReturnPassed ? "yes" : "no"],
          ["reason", s.reason],
          ["last error", s.lastError],
          ["events", String(s.version)],
        ],
      );
      console.log("");
      printTable(
        ["STEP", "STATE", "ATTEMPTS", "COMPENSATIONS", "POINT OF NO RETURN"],
        s.steps.map((st) => [
          st.name,
          STEP_STATES[st.state] ?? "",
          String(st.attempts),
          String(st.compensationAttempts),
          st.pointOfNoReturn ? "yes" : "",
        ]),
      );
      if (s.errors.length > 0) {
        console.log("");
        printTable(
          ["WHEN", "STEP", "ATTEMPT", "ERROR"],
          s.errors.map((e) => [when(e.occurredAt), e.compensation ? `compensate:${e.step}` : e.step, String(e.attempt), e.error]),
        );
      }
      return STATUS_NAMES[s.status] === "failed" ? 1 : 0;
    }
    const { sagaStatus } = await import("../../kernel/sagas/index.js");
    const s = await withDatabase((db) => sagaStatus(db, id));
    if (!s) {
      console.error(`no saga ${id} (see \`nexus sagas list\`)`);
      return 1;
    }
    if (values.json) {
      console.log(json(s));
      return 0;
    }
    printTable(
      ["FIELD", "VALUE"],
      [
        ["saga", s.sagaId],
        ["name", s.name],
        ["status", s.status],
        ["tenant", s.tenantId ?? ""],
        ["started", s.startedAt.toISOString()],
        ["deadline", s.deadline.toISOString()],
        ["completed", s.completed.join(", ")],
        ["compensated", s.compensated.join(", ")],
        ["in flight", s.inFlight ?? ""],
        ["point of no return passed", s.irreversible ? "yes" : "no"],
        [
          "attempts",
          Object.entries(s.attempts)
            .map(([k, v]) => `${k}=${v}`)
            .join(", "),
        ],
        ["reason", s.reason ?? ""],
        ["last error", s.lastError ?? ""],
        ["events", String(s.version)],
      ],
    );
    return s.status === "failed" ? 1 : 0;
  },
};

/** `nexus tenants offboard <tenant-id>`: runs (or resumes) the tenant offboarding saga, or starts it through the API. */
export const tenantsOffboardCommand: Command = {
  path: ["tenants", "offboard"],
  summary: "Offboard a tenant as a saga: suspend its keys, check legal holds, shred its keys (irreversible), delete its data",
  usage:
    "nexus tenants offboard <tenant-id> --reason <text> [--saga-id <id> (resume)] [--api --confirm <tenant-id> [--url URL]] [--json]   (--api: StartTenantOffboarding with NEXUS_API_KEY; returns at once, follow with `nexus sagas status --api`)",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        api: { type: "boolean" },
        reason: { type: "string" },
        confirm: { type: "string" },
        "saga-id": { type: "string" },
      },
      allowPositionals: true,
      strict: true,
    });
    const tenantId = positionals[0];
    if (positionals.length !== 1 || tenantId === undefined) throw new UsageError("give one tenant id");
    if (!values.reason) throw new UsageError("give --reason (recorded in the suspension and the saga)");
    if (viaApi(values)) {
      if (values["saga-id"]) throw new UsageError("--saga-id resumes from the database: leave out --api/--url");
      if (!values.confirm) throw new UsageError(`give --confirm ${tenantId}: offboarding destroys the tenant's data`);
      const { StartTenantOffboardingResponseSchema } = await import("../../../gen/nexus/eventstore/v1/event_store_service_pb.js");
      const res = await clientFrom(values).events.startTenantOffboarding({ tenantId, reason: values.reason, confirmation: values.confirm });
      if (values.json) printJson(StartTenantOffboardingResponseSchema, res);
      else
        console.log(
          `saga ${res.saga?.sagaId ?? ""}: ${STATUS_NAMES[res.saga?.status ?? 0] ?? ""}` +
            (res.started ? " (started)" : " (an offboarding of this tenant already exists)") +
            `; follow it with \`nexus sagas status ${res.saga?.sagaId ?? ""} --api\``,
        );
      return 0;
    }
    const { loadConfig } = await import("../../kernel/config.js");
    const { offboardTenant } = await import("../../runtime/tenant-offboarding.js");
    const input = { tenantId, reason: values.reason, ...(values["saga-id"] ? { sagaId: values["saga-id"] } : {}) };
    const s = await withDatabase((db) => offboardTenant(db, loadConfig(), input));
    if (values.json) console.log(json(s));
    else
      console.log(
        `saga ${s.sagaId}: ${s.status}; steps completed: ${s.completed.join(", ") || "none"}` +
          (s.compensated.length ? `; compensated: ${s.compensated.join(", ")}` : "") +
          (s.reason ? `; reason: ${s.reason}` : ""),
      );
    return s.status === "completed" ? 0 : 1;
  },
};

/** The `nexus sagas` commands (and `nexus tenants offboard`, which runs a saga). */
export const sagasCommands: readonly Command[] = [sagasListCommand, sagasStatusCommand, tenantsOffboardCommand];
