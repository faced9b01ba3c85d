import { Ajv, type ValidateFunction } from "ajv";

/**
 * JSON Schema validation of tool inputs and outputs with [ajv](https://ajv.js.org) (draft-07
 * and the common 2019/2020 keywords it accepts in non-strict mode). Compiled validators are
 * cached by schema text: a module version's schemas never change, so a warm call compiles
 * nothing.
 */
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
const compiled = new Map<string, ValidateFunction>();
const MAX_CACHED = 2000;

/** The validator of `schema`; throws ajv's error when the schema itself is not valid. */
export function validatorOf(schema: Record<string, unknown>): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    v = ajv.compile(schema);
    if (compiled.size >= MAX_CACHED) compiled.clear();
    compiled.set(key, v);
  }
  return v;
}

/** Why `schema` cannot be compiled, or undefined when it can. */
export function schemaProblem(schema: Record<string, unknown>): string | undefined {
  try {
    validatorOf(schema);
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

/** The problems of `value` against `schema` as one line ("/city must be string; ..."), or undefined when it matches. */
export function schemaViolations(schema: Record<string, unknown> | undefined, value: unknown): string | undefined {
  if (!schema || Object.keys(schema).length === 0) return undefined;
  const v = validatorOf(schema);
  if (v(value)) return undefined;
  return (v.errors ?? [])
    .slice(0, 10)
    .map((e) => `${e.instancePath || "(root)"} ${e.message ?? "is invalid"}`)
    .join("; ");
}

/** Whether a JSON value has a `__proto__` key anywhere (refused: it would rewrite prototypes of objects built from it). */
export function hasProtoKey(value: unknown, depth = 0): boolean {
  if (depth > 64 || value === null || typeof value !== "object") return false;
  if (Array.isArray(value)) return value.some((v) => hasProtoKey(v, depth + 1));
  return Object.keys(value).some((k) => k === "__proto__" || hasProtoKey((value as Record<string, unknown>)[k], depth + 1));
}
