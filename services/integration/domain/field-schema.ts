/** A sender app field as stored. */
export interface AppField {
  name: string;
  type: "any" | "string" | "integer" | "number" | "boolean" | "timestamp" | "json";
  required: boolean;
}

/** A payload problem: the field and what is wrong with it. */
export interface FieldProblem {
  field: string;
  message: string;
}

function typeProblem(type: AppField["type"], value: unknown): string | undefined {
  switch (type) {
    case "any":
    case "json":
      return undefined;
    case "string":
      return typeof value === "string" ? undefined : "must be a string";
    case "integer":
      return typeof value === "number" && Number.isInteger(value) ? undefined : "must be an integer";
    case "number":
      return typeof value === "number" && Number.isFinite(value) ? undefined : "must be a number";
    case "boolean":
      return typeof value === "boolean" ? undefined : "must be true or false";
    case "timestamp":
      if (typeof value === "number" && Number.isFinite(value)) return undefined;
      return typeof value === "string" && !Number.isNaN(Date.parse(value))
        ? undefined
        : "must be an RFC 3339 date-time or epoch milliseconds";
    default: {
      const _exhaustive: never = type;
      return _exhaustive;
    }
  }
}

/**
 * Checks a payload against an app's field schema: required fields present and not null, typed
 * fields of their type. Fields not in the schema pass (senders may send more). An empty schema
 * accepts any object.
 */
export function validatePayload(fields: readonly AppField[], payload: Record<string, unknown>): FieldProblem[] {
  const problems: FieldProblem[] = [];
  for (const f of fields) {
    const value = payload[f.name];
    if (value === undefined || value === null) {
      if (f.required) problems.push({ field: f.name, message: "is required" });
      continue;
    }
    const problem = typeProblem(f.type, value);
    if (problem) problems.push({ field: f.name, message: problem });
  }
  return problems;
}
