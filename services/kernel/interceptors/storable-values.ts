import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { ScalarType } from "@bufbuild/protobuf";
import type { Path, ReflectMessage } from "@bufbuild/protobuf/reflect";
import { reflect } from "@bufbuild/protobuf/reflect";
import { Violation } from "@bufbuild/protovalidate";

/**
 * Rules every request message obeys whatever its proto says, checked generically over every
 * field (nested messages, lists, map keys and values, google.protobuf.Struct/Value included):
 *
 * - **strings hold no NUL** (U+0000): PostgreSQL's `text` and `jsonb` cannot store it, so a NUL
 *   in a name, reason, query or metadata value would otherwise fail deep in a handler
 *   (INTERNAL) — or, worse, count as a dependency failure;
 * - **64-bit integers are exact JavaScript numbers** (|n| ≤ 2^53−1): the services keep counts,
 *   limits and sequences as `number` and the columns are `bigint`, so a larger value would be
 *   rounded (2^53+1 stored as 2^53) or committed and then unreadable (2^64−1). Refusing it is
 *   the only way to keep "what you write is what you read";
 * - **timestamps are real instants** (0001-01-01T00:00:00Z … 9999-12-31T23:59:59.999999999Z,
 *   nanos 0…999,999,999) and **durations within ±10,000 years** with nanos of the same sign
 *   (|nanos| ≤ 999,999,999) — the ranges google.protobuf.Timestamp and Duration define, which
 *   the binary encoding alone does not enforce;
 * - **numbers in a google.protobuf.Value are finite**: NaN and ±Infinity have no JSON form.
 *
 * These are the limits of what the platform can store and hand back exactly; the per-field
 * `buf.validate` rules in the protos come on top.
 */
export function storableValueViolations(schema: DescMessage, message: Message): Violation[] {
  const violations: Violation[] = [];
  walkMessage(reflect(schema, message), [], violations, 0);
  return violations;
}

/** Rule ids of the violations {@link storableValueViolations} reports. */
export const STORABLE_RULES = {
  nul: "string.no_nul",
  int64: "int64.exact",
  timestamp: "timestamp.valid",
  duration: "duration.valid",
  finite: "value.finite",
  depth: "message.depth",
} as const;

/** Largest exact integer a JavaScript number holds (2^53−1). */
const EXACT = BigInt(Number.MAX_SAFE_INTEGER);
/** 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, in seconds since the epoch. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/** ±10,000 years, the range google.protobuf.Duration defines. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MAX_NANOS = 999_999_999;
/** Deeper than any request the API defines; a Struct nested further is refused, not walked. */
const MAX_DEPTH = 64;
/** Stop collecting after this many: one is enough to refuse, a few help the caller. */
const MAX_VIOLATIONS = 20;

const INT64_TYPES = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

function violation(out: Violation[], message: string, ruleId: string, path: Path, forKey = false): void {
  if (out.length < MAX_VIOLATIONS) out.push(new Violation(message, ruleId, path, [], forKey));
}

function walkMessage(msg: ReflectMessage, path: Path, out: Violation[], depth: number): void {
  if (depth > MAX_DEPTH) {
    violation(out, `must not nest deeper than ${MAX_DEPTH} levels`, STORABLE_RULES.depth, path);
    return;
  }
  const typeName = msg.desc.typeName;
  if (typeName === "google.protobuf.Timestamp") {
    checkTimestamp(msg.message as unknown as Seconds, path, out);
    return;
  }
  if (typeName === "google.protobuf.Duration") {
    checkDuration(msg.message as unknown as Seconds, path, out);
    return;
  }
  for (const field of msg.fields) {
    if (out.length >= MAX_VIOLATIONS) return;
    if (!msg.isSet(field)) continue;
    const at: Path = [...path, field];
    switch (field.fieldKind) {
      case "scalar":
        checkScalar(field, msg.get(field), at, out, typeName);
        break;
      case "message":
        walkMessage(msg.get(field), at, out, depth + 1);
        break;
      case "list": {
        let i = 0;
        for (const item of msg.get(field)) {
          const itemPath: Path = [...at, { kind: "list_sub", index: i++ }];
          if (field.listKind === "message") walkMessage(item as ReflectMessage, itemPath, out, depth + 1);
          else if (field.listKind === "scalar") checkScalar(field, item, itemPath, out, typeName);
        }
        break;
      }
      case "map":
        for (const [key, value] of msg.get(field)) {
          const entryPath: Path = [...at, { kind: "map_sub", key: key as string | number | bigint | boolean }];
          checkScalar(field, key, entryPath, out, typeName, true);
          if (field.mapKind === "message") walkMessage(value as ReflectMessage, entryPath, out, depth + 1);
          else if (field.mapKind === "scalar") checkScalar(field, value, entryPath, out, typeName);
        }
        break;
      case "enum":
        break;
    }
  }
}

function checkScalar(field: DescField, value: unknown, path: Path, out: Violation[], owner: string, isKey = false): void {
  const type: ScalarType | undefined = isKey && field.fieldKind === "map" ? field.mapKey : field.scalar;
  if (typeof value === "string" && type === ScalarType.STRING) {
    if (value.includes("\0")) violation(out, "must not contain NUL characters (U+0000)", STORABLE_RULES.nul, path, isKey);
    return;
  }
  if (
    type !== undefined &&
    INT64_TYPES.has(type) &&
    (typeof value === "bigint" || typeof value === "string" || typeof value === "number")
  ) {
    const n = BigInt(value);
    if (n > EXACT || n < -EXACT) {
      violation(out, `must be between ${-EXACT} and ${EXACT} (larger integers are not stored exactly)`, STORABLE_RULES.int64, path, isKey);
    }
    return;
  }
  if (typeof value === "number" && owner === "google.protobuf.Value" && field.name === "number_value" && !Number.isFinite(value)) {
    violation(out, "must be a finite number", STORABLE_RULES.finite, path);
  }
}

interface Seconds {
  seconds: bigint;
  nanos: number;
}

function checkTimestamp(t: Seconds, path: Path, out: Violation[]): void {
  if (t.seconds < MIN_TIMESTAMP_SECONDS || t.seconds > MAX_TIMESTAMP_SECONDS || t.nanos < 0 || t.nanos > MAX_NANOS) {
    violation(
      out,
      "must be a valid timestamp: between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z, nanos 0 to 999999999",
      STORABLE_RULES.timestamp,
      path,
    );
  }
}

function checkDuration(d: Seconds, path: Path, out: Violation[]): void {
  const sameSign = d.seconds === 0n || d.nanos === 0 || d.seconds > 0n === d.nanos > 0;
  if (d.seconds > MAX_DURATION_SECONDS || d.seconds < -MAX_DURATION_SECONDS || Math.abs(d.nanos) > MAX_NANOS || !sameSign) {
    violation(
      out,
      "must be a valid duration: within ±315576000000 s, nanos within ±999999999 with the sign of the seconds",
      STORABLE_RULES.duration,
      path,
    );
  }
}
