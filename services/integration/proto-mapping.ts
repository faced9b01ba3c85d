import { create, fromJson, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Destination,
  DestinationConfigSchema,
  DestinationSchema,
  type Execution,
  ExecutionSchema,
  ExecutionStatus,
  type FieldSpec,
  FieldType,
  type MqttSource,
  MqttSourceSchema,
  PayloadFormat,
  type SenderApp,
  SenderAppSchema,
  type Workflow,
  type WorkflowDefinition,
  WorkflowSchema,
} from "../../gen/nexus/integration/v1/resources_pb.js";
import type { AppRow, DestinationRow, ExecutionRow, MqttRow, WorkflowRow } from "./adapters/postgres.js";
import type { AppField } from "./domain/field-schema.js";

const TYPES: Record<FieldType, AppField["type"]> = {
  [FieldType.UNSPECIFIED]: "any",
  [FieldType.STRING]: "string",
  [FieldType.INTEGER]: "integer",
  [FieldType.NUMBER]: "number",
  [FieldType.BOOLEAN]: "boolean",
  [FieldType.TIMESTAMP]: "timestamp",
  [FieldType.JSON]: "json",
};
const TYPE_OF = Object.fromEntries(Object.entries(TYPES).map(([k, v]) => [v, Number(k) as FieldType])) as Record<
  AppField["type"],
  FieldType
>;

/** Field specs as stored. */
export const fieldsFromProto = (fields: readonly FieldSpec[]): AppField[] =>
  fields.map((f) => ({ name: f.name, type: TYPES[f.type], required: f.required }));

/** A sender app (never its key or secrets). */
export function appToProto(a: AppRow): SenderApp {
  return create(SenderAppSchema, {
    appId: a.id,
    tenantId: a.tenantId,
    name: a.name,
    fields: a.fields.map((f) => ({ name: f.name, type: TYPE_OF[f.type], required: f.required })),
    encryptionRequired: a.encryptionRequired,
    keyVersion: a.keyVersion,
    keyPrefix: a.keyPrefix,
    createTime: timestampFromDate(a.createdAt),
    kubernetesResource: a.kubernetesResource,
    managedByKubernetes: a.kubernetesResource !== "",
  });
}

/** A destination (its stored configuration has no secrets). */
export function destinationToProto(d: DestinationRow): Destination {
  return create(DestinationSchema, {
    destinationId: d.id,
    tenantId: d.tenantId,
    name: d.name,
    config: fromJson(DestinationConfigSchema, d.config, { ignoreUnknownFields: true }),
    hasSecret: d.sealedSecret !== null,
    createTime: timestampFromDate(d.createdAt),
    kubernetesResource: d.kubernetesResource,
    managedByKubernetes: d.kubernetesResource !== "",
  });
}

/** A workflow with one version's definition. */
export function workflowToProto(w: WorkflowRow, version: number, definition: WorkflowDefinition, subject: string): Workflow {
  return create(WorkflowSchema, {
    workflowId: w.id,
    tenantId: w.tenantId,
    name: w.name,
    currentVersion: w.currentVersion,
    version,
    definition,
    subject,
    createTime: timestampFromDate(w.createdAt),
    kubernetesResource: w.kubernetesResource,
    managedByKubernetes: w.kubernetesResource !== "",
    enabled: w.enabled,
  });
}

const FORMATS: Record<MqttRow["format"], PayloadFormat> = { json: PayloadFormat.JSON, csv: PayloadFormat.CSV, raw: PayloadFormat.RAW };
/** Stored format of a proto payload format. */
export const formatFromProto = (f: PayloadFormat): MqttRow["format"] =>
  f === PayloadFormat.CSV ? "csv" : f === PayloadFormat.RAW ? "raw" : "json";

/** An MQTT source with this process's status. */
export function mqttToProto(m: MqttRow, status?: { connected: boolean; received: number; lastError?: string }): MqttSource {
  return create(MqttSourceSchema, {
    sourceId: m.id,
    tenantId: m.tenantId,
    name: m.name,
    url: m.url,
    username: m.username,
    topics: m.topics,
    qos: m.qos,
    format: FORMATS[m.format],
    connected: status?.connected ?? false,
    received: BigInt(status?.received ?? 0),
    lastError: status?.lastError ?? "",
  });
}

const STATUSES: Record<string, ExecutionStatus> = {
  pending: ExecutionStatus.PENDING,
  succeeded: ExecutionStatus.SUCCEEDED,
  retrying: ExecutionStatus.RETRYING,
  dead_lettered: ExecutionStatus.DEAD_LETTERED,
  skipped: ExecutionStatus.SKIPPED,
  failed: ExecutionStatus.FAILED,
};
/** Stored status of a proto status ("" for any). */
export const statusFromProto = (s: ExecutionStatus): string =>
  Object.entries(STATUSES).find(([, v]) => v === s && s !== ExecutionStatus.UNSPECIFIED)?.[0] ?? "";

/** An execution log entry. */
export function executionToProto(e: ExecutionRow): Execution {
  return create(ExecutionSchema, {
    executionId: e.id,
    messageId: e.messageId,
    workflowId: e.workflowId,
    workflowVersion: e.workflowVersion,
    destinationId: e.destinationId,
    step: e.step,
    status: STATUSES[e.status] ?? ExecutionStatus.UNSPECIFIED,
    attempts: e.attempts,
    latencyMs: e.latencyMs,
    error: e.error,
    updateTime: timestampFromDate(e.updatedAt),
    ...(e.detail ? { detail: e.detail as JsonObject } : {}),
  });
}
