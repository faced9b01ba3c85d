import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import jsonata from "jsonata";
import {
  type FieldMapping as FieldMappingMsg,
  FieldType,
  NullStrategy,
  SqlOperation,
  type SqlWrite as SqlWriteMsg,
  StepType,
  type Target,
  type WorkflowDefinition,
  WorkflowKind,
} from "../../../gen/nexus/integration/v1/resources_pb.js";
import type { FieldMapping, SqlWrite } from "../connectors/ports.js";

/** A definition problem: the field path and what is wrong (INVALID_ARGUMENT naming the field). */
export interface DefinitionProblem {
  field: string;
  message: string;
}

/** What the checker needs to know about a destination the definition names. */
export interface DestinationKind {
  kind: "rest" | "sql" | "nats" | "corpus";
}

/** Default execution record retention: 7 days. */
export const DEFAULT_RETENTION_HOURS = 168;

/** Compiles a JSONata expression; the parse error message when it does not compile. */
export function compileProblem(expression: string): string | undefined {
  try {
    jsonata(expression);
    return undefined;
  } catch (err) {
    const e = err as { message?: string; position?: number };
    return `${e.message ?? "does not compile"}${e.position !== undefined ? ` (at character ${e.position})` : ""}`;
  }
}

const FIELD_TYPES: Record<FieldType, FieldMapping["type"] | undefined> = {
  [FieldType.UNSPECIFIED]: undefined,
  [FieldType.STRING]: "string",
  [FieldType.INTEGER]: "integer",
  [FieldType.NUMBER]: "number",
  [FieldType.BOOLEAN]: "boolean",
  [FieldType.TIMESTAMP]: "timestamp",
  [FieldType.JSON]: "json",
};

const OPERATIONS: Record<SqlOperation, SqlWrite["operation"] | undefined> = {
  [SqlOperation.UNSPECIFIED]: undefined,
  [SqlOperation.INSERT]: "insert",
  [SqlOperation.UPSERT]: "upsert",
  [SqlOperation.UPDATE]: "update",
  [SqlOperation.DELETE]: "delete",
  [SqlOperation.SELECT]: "select",
};

/** A proto mapping as the connector library takes it. */
export function mappingOf(m: FieldMappingMsg): FieldMapping {
  const type = FIELD_TYPES[m.type];
  const nullStrategy = m.nullStrategy === NullStrategy.NULL ? "null" : m.nullStrategy === NullStrategy.DEFAULT ? "default" : "skip";
  return {
    source: m.source,
    column: m.column,
    ...(type ? { type } : {}),
    // The proto default is a google.protobuf.Value message; the connectors take its JSON value.
    ...(m.default !== undefined ? { default: toJson(ValueSchema, m.default) } : {}),
    nullStrategy,
  };
}

/** A proto SQL write as the connector library takes it (operation defaults to insert). */
export function sqlWriteOf(w: SqlWriteMsg): SqlWrite {
  return {
    operation: OPERATIONS[w.operation] ?? "insert",
    table: w.table,
    mappings: w.mappings.map(mappingOf),
    ...(w.keyColumns.length > 0 ? { keyColumns: [...w.keyColumns] } : {}),
    ...(w.partial ? { partial: true } : {}),
  };
}

function checkExpression(problems: DefinitionProblem[], field: string, expression: string, required: boolean): void {
  if (expression === "") {
    if (required) problems.push({ field, message: "an expression is required" });
    return;
  }
  const problem = compileProblem(expression);
  if (problem) problems.push({ field, message: `JSONata expression does not compile: ${problem}` });
}

function checkTarget(
  problems: DefinitionProblem[],
  path: string,
  target: Target | undefined,
  destinations: ReadonlyMap<string, DestinationKind>,
  validateMappings: (m: FieldMapping[]) => string[],
  want?: DestinationKind["kind"],
): void {
  if (!target) {
    problems.push({ field: path, message: "a target is required" });
    return;
  }
  const dest = destinations.get(target.destinationId);
  if (!dest) {
    problems.push({ field: `${path}.destination_id`, message: `no destination ${target.destinationId} in this tenant` });
    return;
  }
  if (want && dest.kind !== want) {
    problems.push({ field: `${path}.destination_id`, message: `must be a ${want} destination (it is ${dest.kind})` });
    return;
  }
  checkExpression(problems, `${path}.transform`, target.transform, false);
  checkExpression(problems, `${path}.condition`, target.condition, false);
  checkExpression(problems, `${path}.title`, target.title, false);
  if (dest.kind === "sql") {
    const w = target.sql;
    if (!w || w.table === "") {
      problems.push({ field: `${path}.sql.table`, message: "a database target names its table" });
      return;
    }
    if (w.mappings.length === 0 && w.operation !== SqlOperation.SELECT)
      problems.push({ field: `${path}.sql.mappings`, message: "at least one mapping is required" });
    const write = sqlWriteOf(w);
    if (["upsert", "update", "delete", "select"].includes(write.operation) && (write.keyColumns?.length ?? 0) === 0)
      problems.push({ field: `${path}.sql.key_columns`, message: `${write.operation} needs key columns` });
    for (const message of validateMappings(write.mappings)) problems.push({ field: `${path}.sql.mappings`, message });
  }
}

/**
 * Checks a workflow definition when it is saved: every expression compiles, every mapping is
 * valid, every named destination exists with the right kind, step references resolve. Returns
 * the problems (empty: the definition is fine).
 */
export function checkDefinition(
  def: WorkflowDefinition,
  destinations: ReadonlyMap<string, DestinationKind>,
  validateMappings: (m: FieldMapping[]) => string[],
): DefinitionProblem[] {
  const problems: DefinitionProblem[] = [];
  if (def.source?.appId && def.source.mqttSourceId)
    problems.push({ field: "definition.source", message: "name a sender app or an MQTT source, not both" });
  if (def.kind === WorkflowKind.FAN_OUT) {
    if (def.targets.length === 0) problems.push({ field: "definition.targets", message: "a fan-out workflow needs at least one target" });
    if (def.steps.length > 0) problems.push({ field: "definition.steps", message: "a fan-out workflow has targets, not steps" });
    def.targets.forEach((t, i) => checkTarget(problems, `definition.targets[${i}]`, t, destinations, validateMappings));
  } else if (def.kind === WorkflowKind.SEQUENTIAL) {
    if (def.steps.length === 0) problems.push({ field: "definition.steps", message: "a sequential workflow needs at least one step" });
    if (def.targets.length > 0) problems.push({ field: "definition.targets", message: "a sequential workflow has steps, not targets" });
    const names = new Set<string>();
    def.steps.forEach((s, i) => {
      if (names.has(s.name)) problems.push({ field: `definition.steps[${i}].name`, message: `step name ${s.name} is used twice` });
      names.add(s.name);
    });
    def.steps.forEach((s, i) => {
      const path = `definition.steps[${i}]`;
      for (const [field, ref] of [
        ["then_step", s.thenStep],
        ["else_step", s.elseStep],
        ["next_step", s.nextStep],
      ] as const) {
        if (ref !== "" && ref !== "end" && !names.has(ref)) problems.push({ field: `${path}.${field}`, message: `no step named ${ref}` });
      }
      switch (s.type) {
        case StepType.REST_CALL:
          checkTarget(problems, `${path}.target`, s.target, destinations, validateMappings, "rest");
          break;
        case StepType.DB_QUERY:
          checkTarget(problems, `${path}.target`, s.target, destinations, validateMappings, "sql");
          break;
        case StepType.TRANSFORM:
        case StepType.CONDITION:
          checkExpression(problems, `${path}.expression`, s.expression, true);
          break;
        case StepType.DELAY:
          if (s.delayMs === 0) problems.push({ field: `${path}.delay_ms`, message: "a delay step needs delay_ms > 0" });
          break;
        case StepType.UNSPECIFIED:
          problems.push({ field: `${path}.type`, message: "a step type is required" });
          break;
        default: {
          const _exhaustive: never = s.type;
          return _exhaustive;
        }
      }
    });
  }
  return problems;
}
