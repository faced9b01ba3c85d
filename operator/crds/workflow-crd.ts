import { buildCrd, type CustomResourceDefinition, conditionsSchema, type JsonSchema } from "./crd-builder.js";
import { WORKFLOW } from "./group.js";
import { integrationStatusProperties, localRefSchema, readyAndTenantColumns, reasonColumn, tenantRefSchema } from "./integration-common.js";
import { FIELD_TYPES } from "./sender-app-crd.js";

/** Workflow kinds (Nexus `WorkflowKind`). */
export const WORKFLOW_KINDS = ["FanOut", "Sequential"] as const;
/** Step types of a sequential workflow (Nexus `StepType`). */
export const STEP_TYPES = ["RestCall", "DbQuery", "Transform", "Condition", "Delay"] as const;
/** What a failing step does (Nexus `OnError`; Stop is the default). */
export const ON_ERROR = ["Stop", "Skip", "Retry"] as const;
/** SQL operations (Nexus `SqlOperation`). */
export const SQL_OPERATIONS = ["Insert", "Upsert", "Update", "Delete", "Select"] as const;
/** Null strategies of a field mapping (Nexus `NullStrategy`; Skip is the default). */
export const NULL_STRATEGIES = ["Skip", "Null", "Default"] as const;

const expression = (what: string): JsonSchema => ({ type: "string", maxLength: 10000, description: `JSONata: ${what}.` });

const target: JsonSchema = {
  type: "object",
  required: ["destinationRef"],
  properties: {
    destinationRef: localRefSchema("Destination"),
    transform: expression("the value delivered (default: the message)"),
    condition: expression("deliver only when true"),
    path: { type: "string", maxLength: 2000, description: "Appended to a REST destination's URL." },
    title: { type: "string", maxLength: 2000, description: "JSONata: document title (corpus destinations)." },
    sql: {
      type: "object",
      required: ["operation", "table"],
      description: "How a database destination is written.",
      "x-kubernetes-validations": [
        {
          rule: "self.operation != 'Upsert' || (has(self.keyColumns) && size(self.keyColumns) > 0)",
          message: "sql.operation Upsert needs keyColumns",
        },
      ],
      properties: {
        operation: { type: "string", enum: [...SQL_OPERATIONS] },
        table: { type: "string", minLength: 1, maxLength: 200 },
        keyColumns: { type: "array", maxItems: 20, items: { type: "string", maxLength: 200 } },
        partial: { type: "boolean", default: false },
        mappings: {
          type: "array",
          maxItems: 100,
          items: {
            type: "object",
            required: ["source", "column"],
            properties: {
              source: { type: "string", minLength: 1, maxLength: 500, description: "JSONata path into the message." },
              column: { type: "string", minLength: 1, maxLength: 200 },
              type: { type: "string", enum: [...FIELD_TYPES], default: "Json" },
              default: {
                type: "string",
                maxLength: 2000,
                description: "Value used when the source is missing (with nullStrategy Default).",
              },
              nullStrategy: { type: "string", enum: [...NULL_STRATEGIES], default: "Skip" },
            },
          },
        },
      },
    },
  },
};

const step: JsonSchema = {
  type: "object",
  required: ["name", "type"],
  "x-kubernetes-validations": [
    {
      rule: "(self.type == 'RestCall' || self.type == 'DbQuery') == has(self.target)",
      message: "RestCall and DbQuery steps need a target; other steps take none",
    },
    {
      rule: "self.type != 'Condition' || (has(self.expression) && has(self.thenStep))",
      message: "a Condition step needs expression and thenStep",
    },
    { rule: "self.type != 'Transform' || has(self.expression)", message: "a Transform step needs expression" },
    { rule: "self.type != 'Delay' || has(self.delayMs)", message: "a Delay step needs delayMs" },
    { rule: "!has(self.maxRetries) || self.onError == 'Retry'", message: "maxRetries applies only with onError Retry" },
  ],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 100, pattern: "^[A-Za-z_][A-Za-z0-9_]*$" },
    type: { type: "string", enum: [...STEP_TYPES] },
    target,
    expression: expression("the transform's value, or the condition"),
    thenStep: { type: "string", maxLength: 100 },
    elseStep: { type: "string", maxLength: 100, description: "Empty: the run ends when the condition is false." },
    nextStep: { type: "string", maxLength: 100, description: "Jump here next (end ends the run)." },
    delayMs: { type: "integer", minimum: 1, maximum: 600000 },
    onError: { type: "string", enum: [...ON_ERROR], default: "Stop" },
    maxRetries: { type: "integer", minimum: 1, maximum: 20 },
  },
};

/** The Workflow CRD: an integration workflow reconciled into the integration service. */
export function workflowCrd(): CustomResourceDefinition {
  return buildCrd({
    names: WORKFLOW,
    description:
      "An integration workflow: messages of a SenderApp fanned out to Destinations (FanOut) or run through steps (Sequential). The operator creates it in the integration service, saves a new version when the spec changes, puts back changes made outside Kubernetes (the object is managed by Kubernetes: API and console edits are refused) and deletes it with the object.",
    printerColumns: [
      ...readyAndTenantColumns,
      { name: "Kind", type: "string", jsonPath: ".spec.kind" },
      { name: "Version", type: "integer", jsonPath: ".status.version", description: "The workflow's current version in Nexus." },
      { name: "Source", type: "string", jsonPath: ".spec.source.senderAppRef.name", priority: 1 },
      { name: "Workflow ID", type: "string", jsonPath: ".status.workflowId", priority: 1 },
      reasonColumn,
    ],
    spec: {
      type: "object",
      required: ["tenantRef", "source"],
      "x-kubernetes-validations": [
        {
          rule: "self.kind != 'FanOut' || (has(self.targets) && size(self.targets) > 0 && !has(self.steps))",
          message: "a FanOut workflow needs at least one target and no steps",
        },
        {
          rule: "self.kind != 'Sequential' || (has(self.steps) && size(self.steps) > 0 && !has(self.targets))",
          message: "a Sequential workflow needs at least one step and no targets",
        },
      ],
      properties: {
        tenantRef: tenantRefSchema,
        kind: { type: "string", enum: [...WORKFLOW_KINDS], default: "FanOut" },
        source: {
          type: "object",
          required: ["senderAppRef"],
          description: "Where messages come from.",
          properties: { senderAppRef: localRefSchema("SenderApp") },
        },
        targets: { type: "array", maxItems: 20, description: "FanOut: each target delivers with its own retries.", items: target },
        steps: {
          type: "array",
          maxItems: 50,
          description: "Sequential: run in order (nextStep, thenStep and elseStep jump).",
          "x-kubernetes-list-type": "map",
          "x-kubernetes-list-map-keys": ["name"],
          items: step,
        },
        retentionHours: {
          type: "integer",
          minimum: 1,
          maximum: 87600,
          default: 168,
          description: "Execution log retention. Default 168 (7 days).",
        },
      },
    },
    status: {
      type: "object",
      properties: {
        ...integrationStatusProperties,
        workflowId: { type: "string", description: "The workflow's id in Nexus." },
        version: { type: "integer", description: "Its current version (each applied change saves one)." },
        subject: { type: "string", description: "NATS subject its messages travel on." },
        conditions: conditionsSchema,
      },
    },
  });
}
