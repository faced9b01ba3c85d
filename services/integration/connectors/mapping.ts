/**
 * Field mappings (TR-01..05): one input field → one destination column, with type conversion,
 * defaults, a null strategy and partial updates. `validateMappings` is the save-time check;
 * `applyMappings` runs per message and throws MAPPING_FAILED naming the field and the value's type
 * (never the value itself: payloads may carry personal data).
 */

import { ConnectorError, type FieldMapping, type FieldType, type NullStrategy } from "./ports.js";
import { checkIdentifier } from "./sql/identifiers.js";

/** The value types a mapping may name. */
export const FIELD_TYPES: readonly FieldType[] = Object.freeze(["string", "integer", "number", "boolean", "timestamp", "json"]);
/** The null strategies a mapping may name. */
export const NULL_STRATEGIES: readonly NullStrategy[] = Object.freeze(["skip", "null", "default"]);

/** Path segments that would reach an object's prototype instead of its data. */
const FORBIDDEN_SEGMENTS = new Set(["__proto__", "prototype", "constructor"]);

/**
 * Epoch numbers below this are read as seconds, at or above as milliseconds: 1e11 s is the year
 * 5138 and 1e11 ms is March 1973, so no current timestamp falls into the ambiguous range.
 */
const EPOCH_SECONDS_BELOW = 100_000_000_000;

/** A dotted path's segments, or an explanation of why it is not one. */
function pathSegments(source: unknown): string[] | string {
  if (typeof source !== "string" || source.length === 0) return "is empty (use a dotted path such as device.temp)";
  if (source.length > 512) return "is longer than 512 characters";
  const segments = source.split(".");
  if (segments.some((s) => s.trim().length === 0)) return `"${source}" has an empty segment (no leading, trailing or double dots)`;
  const forbidden = segments.find((s) => FORBIDDEN_SEGMENTS.has(s));
  if (forbidden) return `"${source}" uses the reserved segment "${forbidden}"`;
  return segments;
}

/** Reads a dotted path (`a.b.0.c`) from the input: `undefined` when any step is missing. */
export function readPath(input: unknown, source: string): unknown {
  let current: unknown = input;
  for (const segment of source.split(".")) {
    if (current === null || typeof current !== "object") return undefined;
    if (!Object.hasOwn(current, segment)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

/** How a value's type reads in an error message. */
function describeType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return Number.isFinite(value) ? (Number.isInteger(value) ? "an integer" : "a fractional number") : "a non-finite number";
    case "boolean":
      return "a boolean";
    case "bigint":
      return "a bigint";
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

const TRUE_WORDS = new Set(["true", "1", "yes", "y", "on"]);
const FALSE_WORDS = new Set(["false", "0", "no", "n", "off"]);
const INTEGER_TEXT = /^[+-]?\d+$/;

/**
 * Converts one present (non-null) value to a mapping's type, or returns `undefined` when it does
 * not convert. Conversions never lose information silently: 1.5 is not an integer, "abc" is not a
 * number, an object is not a string.
 */
function convert(value: unknown, type: FieldType | undefined): unknown {
  switch (type) {
    case undefined:
      // No declared type: scalars pass through; objects and arrays become JSON text, which both
      // engines accept for json/text columns (pg would otherwise turn an array into a SQL array).
      if (value !== null && typeof value === "object" && !(value instanceof Date)) return JSON.stringify(value);
      if (typeof value === "bigint") return value.toString();
      return value;
    case "string":
      if (typeof value === "string") return value;
      if (typeof value === "number" && Number.isFinite(value)) return String(value);
      if (typeof value === "boolean" || typeof value === "bigint") return String(value);
      if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString();
      return undefined;
    case "integer": {
      if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
      if (typeof value === "bigint") return value.toString();
      if (typeof value === "string" && INTEGER_TEXT.test(value.trim())) {
        const n = Number(value.trim());
        // Beyond 2^53 the text goes to the server as is (exact for bigint columns).
        return Number.isSafeInteger(n) ? n : value.trim();
      }
      return undefined;
    }
    case "number": {
      if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
      if (typeof value === "string" && value.trim() !== "") {
        const n = Number(value.trim());
        return Number.isFinite(n) ? n : undefined;
      }
      return undefined;
    }
    case "boolean": {
      if (typeof value === "boolean") return value;
      if (value === 1 || value === 0) return value === 1;
      if (typeof value === "string") {
        const word = value.trim().toLowerCase();
        if (TRUE_WORDS.has(word)) return true;
        if (FALSE_WORDS.has(word)) return false;
      }
      return undefined;
    }
    case "timestamp": {
      let date: Date | undefined;
      if (value instanceof Date) date = value;
      else if (typeof value === "number" && Number.isFinite(value))
        date = new Date(Math.abs(value) < EPOCH_SECONDS_BELOW ? value * 1000 : value);
      else if (typeof value === "string" && value.trim() !== "") {
        const text = value.trim();
        date = /^\d+(\.\d+)?$/.test(text) ? (convert(Number(text), "timestamp") as Date | undefined) : new Date(text);
      }
      return date && !Number.isNaN(date.getTime()) ? date : undefined;
    }
    case "json":
      return JSON.stringify(value);
    default: {
      const _exhaustive: never = type;
      return _exhaustive;
    }
  }
}

/** What a type is called in an error message ("an integer", "a timestamp"). */
function typeName(type: FieldType): string {
  return type === "integer" ? "an integer" : `a ${type}`;
}

/** Options of {@link applyMappings}. */
export interface ApplyMappingsOptions {
  /**
   * Partial update: a source field that is absent from the input leaves its column out instead of
   * writing null or the default (a field present with `null` still follows the null strategy).
   */
  partial?: boolean;
}

/**
 * The effective null strategy: the mapping's own, else "default" when it has a default, else
 * "null".
 */
function nullStrategyOf(mapping: FieldMapping): NullStrategy {
  return mapping.nullStrategy ?? (mapping.default !== undefined ? "default" : "null");
}

/**
 * Turns one input into the column values of one row. Columns appear in mapping order. Missing and
 * null values follow the null strategy: `skip` leaves the column out, `null` writes NULL,
 * `default` writes the mapping's default (converted to its type). Throws ConnectorError
 * MAPPING_FAILED when a value does not convert, naming the source field, the column, the expected
 * type and the type it got.
 */
export function applyMappings(
  mappings: readonly FieldMapping[],
  input: Record<string, unknown>,
  opts: ApplyMappingsOptions = {},
): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const mapping of mappings) {
    const value = readPath(input, mapping.source);
    if (value === undefined || value === null) {
      if (value === undefined && opts.partial) continue;
      const strategy = nullStrategyOf(mapping);
      if (strategy === "skip") continue;
      if (strategy === "null") {
        row[mapping.column] = null;
        continue;
      }
      if (mapping.default === undefined || mapping.default === null) {
        row[mapping.column] = null;
        continue;
      }
      const fallback = convert(mapping.default, mapping.type);
      if (fallback === undefined) {
        throw new ConnectorError(
          "MAPPING_FAILED",
          `the default of column "${mapping.column}" is ${describeType(mapping.default)}, not ${typeName(mapping.type ?? "string")}: fix the mapping's default`,
        );
      }
      row[mapping.column] = fallback;
      continue;
    }
    const converted = convert(value, mapping.type);
    if (converted === undefined) {
      throw new ConnectorError(
        "MAPPING_FAILED",
        `field "${mapping.source}" (column "${mapping.column}") should be ${typeName(mapping.type ?? "string")} but is ${describeType(value)}: send a convertible value or change the mapping's type`,
      );
    }
    row[mapping.column] = converted;
  }
  return row;
}

/**
 * The save-time check of a mapping list: returns one message per problem (empty when valid) —
 * no mappings, bad source paths, bad or duplicate column names (case-insensitive, as MySQL
 * compares them), unknown types or null strategies, a "default" strategy without a default, a
 * default that does not convert to the type.
 */
export function validateMappings(mappings: readonly FieldMapping[]): string[] {
  const problems: string[] = [];
  if (!Array.isArray(mappings) || mappings.length === 0) return ["at least one mapping (source field → column) is needed"];
  const seen = new Map<string, number>();
  mappings.forEach((mapping, index) => {
    const at = `mapping ${index + 1}`;
    if (mapping === null || typeof mapping !== "object") {
      problems.push(`${at}: is not an object with source and column`);
      return;
    }
    const segments = pathSegments(mapping.source);
    if (typeof segments === "string") problems.push(`${at}: source ${segments}`);
    const columnProblem = checkIdentifier(mapping.column, "column");
    if (columnProblem) problems.push(`${at}: ${columnProblem}`);
    else {
      const key = mapping.column.toLowerCase();
      const first = seen.get(key);
      if (first !== undefined) problems.push(`${at}: column "${mapping.column}" is already mapped by mapping ${first + 1}`);
      else seen.set(key, index);
    }
    if (mapping.type !== undefined && !FIELD_TYPES.includes(mapping.type)) {
      problems.push(`${at}: type "${String(mapping.type)}" is unknown (use one of ${FIELD_TYPES.join(", ")})`);
    }
    if (mapping.nullStrategy !== undefined && !NULL_STRATEGIES.includes(mapping.nullStrategy)) {
      problems.push(`${at}: null strategy "${String(mapping.nullStrategy)}" is unknown (use one of ${NULL_STRATEGIES.join(", ")})`);
    }
    if (mapping.nullStrategy === "default" && (mapping.default === undefined || mapping.default === null)) {
      problems.push(`${at}: null strategy "default" needs a default value`);
    }
    if (
      mapping.default !== undefined &&
      mapping.default !== null &&
      (mapping.type === undefined || FIELD_TYPES.includes(mapping.type)) &&
      convert(mapping.default, mapping.type) === undefined
    ) {
      problems.push(`${at}: default is ${describeType(mapping.default)}, which does not convert to ${typeName(mapping.type ?? "string")}`);
    }
  });
  return problems;
}
