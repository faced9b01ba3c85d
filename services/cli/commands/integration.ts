import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type DescMethod, fromJson, type JsonObject, type JsonValue, toJsonString } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { EdgeService } from "../../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../../gen/nexus/integration/v1/integration_service_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { CLIENT_OPTIONS, clientFrom } from "./client-options.js";

/**
 * `nexus integration …`: one command per IntegrationService RPC. The request is the RPC's
 * protobuf JSON, built from `--body JSON` (or `--body @file.json`) plus the id given as the
 * positional argument; the answer is printed as protobuf JSON (secrets shown once, e.g. a new
 * app key, are in it). `tail` prints one JSON line per execution entry until interrupted.
 */
interface Spec {
  path: [string, string];
  method: string;
  summary: string;
  /** Request field the positional argument fills. */
  id?: string;
  /** An EdgeService RPC (default: IntegrationService). */
  edge?: true;
}

const SPECS: readonly Spec[] = [
  { path: ["apps", "create"], method: "createSenderApp", summary: "Create a sender app (prints its app key once)" },
  { path: ["apps", "get"], method: "getSenderApp", summary: "Show a sender app", id: "appId" },
  { path: ["apps", "list"], method: "listSenderApps", summary: "List sender apps" },
  { path: ["apps", "update"], method: "updateSenderApp", summary: "Change an app's name and field schema", id: "appId" },
  { path: ["apps", "delete"], method: "deleteSenderApp", summary: "Delete a sender app", id: "appId" },
  { path: ["apps", "rotate-key"], method: "rotateAppKey", summary: "Issue a new app key", id: "appId" },
  { path: ["apps", "rotate-secret"], method: "rotateMasterSecret", summary: "Issue a new master secret version", id: "appId" },
  { path: ["apps", "send"], method: "ingest", summary: "Send one message as an app (--body '{\"payload\": {...}}')", id: "appId" },
  { path: ["destinations", "create"], method: "createDestination", summary: "Create a destination (REST, SQL, NATS, corpus)" },
  { path: ["destinations", "get"], method: "getDestination", summary: "Show a destination", id: "destinationId" },
  { path: ["destinations", "list"], method: "listDestinations", summary: "List destinations" },
  {
    path: ["destinations", "update"],
    method: "updateDestination",
    summary: "Replace a destination's name and configuration",
    id: "destinationId",
  },
  { path: ["destinations", "delete"], method: "deleteDestination", summary: "Delete a destination", id: "destinationId" },
  { path: ["destinations", "test"], method: "testDestination", summary: "Test a destination's connection (latency)", id: "destinationId" },
  { path: ["destinations", "tables"], method: "listDestinationTables", summary: "Tables of a database destination", id: "destinationId" },
  {
    path: ["destinations", "columns"],
    method: "listDestinationColumns",
    summary: 'Columns of a table (--body \'{"table": "t"}\')',
    id: "destinationId",
  },
  { path: ["workflows", "create"], method: "createWorkflow", summary: "Create a workflow" },
  { path: ["workflows", "get"], method: "getWorkflow", summary: "Show a workflow", id: "workflowId" },
  { path: ["workflows", "list"], method: "listWorkflows", summary: "List workflows" },
  { path: ["workflows", "update"], method: "updateWorkflow", summary: "Save a new version of a workflow", id: "workflowId" },
  {
    path: ["workflows", "rollback"],
    method: "rollbackWorkflow",
    summary: "Make an earlier version current (--body '{\"version\": 1}')",
    id: "workflowId",
  },
  { path: ["workflows", "versions"], method: "listWorkflowVersions", summary: "List a workflow's versions", id: "workflowId" },
  { path: ["workflows", "delete"], method: "deleteWorkflow", summary: "Delete a workflow", id: "workflowId" },
  { path: ["workflows", "disable"], method: "disableWorkflow", summary: "Pause a workflow (its messages wait)", id: "workflowId" },
  { path: ["workflows", "enable"], method: "enableWorkflow", summary: "Resume a paused workflow", id: "workflowId" },
  { path: ["workflows", "execute"], method: "executeWorkflow", summary: "Queue one message for a workflow", id: "workflowId" },
  { path: ["mqtt", "create"], method: "createMqttSource", summary: "Create an MQTT source" },
  { path: ["mqtt", "get"], method: "getMqttSource", summary: "Show an MQTT source and its status", id: "sourceId" },
  { path: ["mqtt", "list"], method: "listMqttSources", summary: "List MQTT sources" },
  { path: ["mqtt", "delete"], method: "deleteMqttSource", summary: "Delete an MQTT source", id: "sourceId" },
  { path: ["executions", "list"], method: "listExecutions", summary: "The execution log (filters in --body)" },
  { path: ["executions", "tail"], method: "tailExecutions", summary: "Follow the execution log" },
  { path: ["dead-letters", "list"], method: "listDeadLetters", summary: "Deliveries that exhausted their retries" },
  { path: ["dead-letters", "replay"], method: "replayDeadLetter", summary: "Send a dead letter again", id: "sequence" },
  {
    path: ["edges", "register"],
    method: "registerEdge",
    summary: 'Register an edge agent (--body \'{"name": "plant-1", "appIds": ["…"]}\'; prints its token once)',
    edge: true,
  },
  { path: ["edges", "list"], method: "listEdges", summary: "List edge agents: apps, last seen, queue depth, last sync", edge: true },
  { path: ["edges", "get"], method: "getEdge", summary: "Show an edge agent", id: "edgeId", edge: true },
  { path: ["edges", "revoke"], method: "revokeEdge", summary: "Revoke an edge agent's token", id: "edgeId", edge: true },
  {
    path: ["edges", "assign"],
    method: "assignEdgeApps",
    summary: 'Let an edge agent send for sender apps (--body \'{"appIds": ["…"]}\')',
    id: "edgeId",
    edge: true,
  },
  {
    path: ["edges", "unassign"],
    method: "unassignEdgeApps",
    summary: 'Stop an edge agent sending for sender apps (--body \'{"appIds": ["…"]}\')',
    id: "edgeId",
    edge: true,
  },
];

function body(text: string | undefined): JsonObject {
  if (text === undefined) return {};
  const raw = text.startsWith("@") ? readFileSync(text.slice(1), "utf8") : text;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new UsageError("--body must be a JSON object (the request's protobuf JSON), or @file.json");
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new UsageError("--body must be a JSON object");
  return value as JsonObject;
}

function commandOf(spec: Spec): Command {
  const service = spec.edge ? EdgeService : IntegrationService;
  const method = (service.method as Record<string, DescMethod>)[spec.method] as DescMethod;
  return {
    path: ["integration", ...spec.path],
    summary: spec.summary,
    usage: `nexus integration ${spec.path.join(" ")}${spec.id ? " ID" : ""} [--body JSON|@file.json] [--url URL]`,
    async run(args) {
      const { values, positionals } = parseArgs({
        args,
        options: { ...CLIENT_OPTIONS, body: { type: "string" } },
        allowPositionals: true,
        strict: true,
      });
      if (spec.id ? positionals.length !== 1 : positionals.length !== 0)
        throw new UsageError(spec.id ? "give one id" : "no positional arguments");
      const json: Record<string, JsonValue> = body(values.body);
      if (spec.id) json[spec.id] = positionals[0] as string;
      let request: unknown;
      try {
        request = fromJson(method.input, json);
      } catch (err) {
        throw new UsageError(`--body does not fit ${method.input.typeName}: ${(err as Error).message}`);
      }
      const nexus = clientFrom(values);
      const client = (spec.edge ? nexus.edges : nexus.integration) as unknown as Record<string, (r: unknown) => unknown>;
      const call = client[spec.method] as (r: unknown) => unknown;
      if (method.methodKind === "server_streaming") {
        for await (const item of call(request) as AsyncIterable<never>) console.log(toJsonString(method.output, item));
        return 0;
      }
      console.log(toJsonString(method.output, (await call(request)) as never, { prettySpaces: 2 }));
      return 0;
    },
  };
}

/** Every `nexus integration` command. */
export const integrationCommands: readonly Command[] = SPECS.map(commandOf);

/** The SDK type the commands call (kept for readers: `client.integration`). */
export type IntegrationClient = Client<typeof IntegrationService>;
