import type { DescField, DescMessage, JsonValue } from "@bufbuild/protobuf";
import { create, ScalarType, toBinary, toJson } from "@bufbuild/protobuf";

/**
 * Hostile request inputs generated from a message descriptor, reproducibly: every value comes
 * from a seeded generator, so a failing case is named by (seed, method, case index) and comes
 * back the same on the next run.
 */

/** A small, fast, seeded PRNG (mulberry32): the same seed gives the same sequence. */
export function seededRandom(seed: number): Rng {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    chance: (p) => next() < p,
  };
}

/** The PRNG's interface. */
export interface Rng {
  next(): number;
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

const HOSTILE_STRINGS = [
  "",
  "\0",
  "name\0with-nul",
  "x".repeat(70_000),
  "\ud800 lone surrogate",
  "é漢字😀",
  "../../etc/passwd",
  "%3A:%00",
  "' OR 1=1 --",
  "-",
  "a",
];
const MILD_STRINGS = ["fuzz", "fuzz-1", "c1", "doc-1", "a"];

/** The value of each scalar type most likely to break storage: NUL, 2^64−1, −2^63, NaN. */
function primaryHostile(type: ScalarType): unknown {
  switch (type) {
    case ScalarType.STRING:
      return "nul\0inside";
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return 2n ** 64n - 1n;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return -(2n ** 63n);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return Number.NaN;
    default:
      return undefined;
  }
}

/** Extreme values of each scalar type (values a client can put on the wire). */
function hostileScalar(type: ScalarType, rng: Rng, primary = false): unknown {
  const first = primary ? primaryHostile(type) : undefined;
  if (first !== undefined) return first;
  switch (type) {
    case ScalarType.STRING:
      return rng.pick(HOSTILE_STRINGS);
    case ScalarType.BYTES:
      return rng.chance(0.2) ? new Uint8Array(200_000).fill(7) : randomBytes(rng, rng.int(64));
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick([0, -1, 1e308, -1e308, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 5e-324, -0, 0.5]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return rng.pick([0, -1, 2147483647, -2147483648, 1]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return rng.pick([0, 4294967295, 1, 2147483648]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return rng.pick([0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 53n + 1n, 1n]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.pick([0n, 1n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n]);
  }
}

function mildScalar(type: ScalarType, rng: Rng): unknown {
  switch (type) {
    case ScalarType.STRING:
      return rng.pick(MILD_STRINGS);
    case ScalarType.BYTES:
      return new TextEncoder().encode("hello");
    case ScalarType.BOOL:
      return rng.chance(0.5);
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return rng.pick([0.5, 1, 0]);
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return rng.pick([1n, 10n]);
    default:
      return rng.pick([1, 10]);
  }
}

/** Random bytes. */
export function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(256);
  return out;
}

/** A google.protobuf.Struct (as JSON) nested `depth` levels, with hostile keys and values. */
function hostileStruct(rng: Rng, depth: number): Record<string, JsonValue> {
  let inner: Record<string, JsonValue> = { [rng.pick(["k", "k\0ey", ""])]: rng.pick<JsonValue>(["v\0", 1e308, "x", null, true, []]) };
  for (let i = 0; i < depth; i++) inner = { n: inner };
  return inner;
}

const TIMESTAMPS = [
  { seconds: 253_402_300_800n, nanos: 0 }, // year 10000
  { seconds: 0n, nanos: 2_000_000_000 },
  { seconds: -62_135_596_801n, nanos: 0 }, // before year 1
  { seconds: 2n ** 62n, nanos: -1 },
  { seconds: 1_700_000_000n, nanos: 0 },
];
const DURATIONS = [
  { seconds: 315_576_000_001n, nanos: 0 },
  { seconds: 1n, nanos: -5 },
  { seconds: 0n, nanos: 2_000_000_000 },
  { seconds: -(2n ** 62n), nanos: 0 },
  { seconds: 60n, nanos: 0 },
];

function messageValue(desc: DescMessage, rng: Rng, depth: number, hostile: boolean, primary = false): unknown {
  switch (desc.typeName) {
    case "google.protobuf.Timestamp":
      return create(desc, (primary ? TIMESTAMPS[0] : rng.pick(TIMESTAMPS)) as never);
    case "google.protobuf.Duration":
      return create(desc, (primary ? DURATIONS[0] : rng.pick(DURATIONS)) as never);
    case "google.protobuf.Struct":
      return hostile ? (primary ? { "key\0": "value\0" } : hostileStruct(rng, rng.pick([0, 3, 40, 200]))) : { k: "v" };
    case "google.protobuf.Value":
      return hostile ? rng.pick<JsonValue>(["\0", 1e308, hostileStruct(rng, 100)]) : "v";
  }
  return generateInit(desc, rng, { depth: depth + 1, hostileRate: hostile ? 0.5 : 0 });
}

function fieldValue(field: DescField, rng: Rng, depth: number, hostile: boolean, primary = false): unknown {
  const scalar = (t: ScalarType) => (hostile ? hostileScalar(t, rng, primary) : mildScalar(t, rng));
  const enumValue = (values: readonly { number: number }[]) =>
    hostile ? (primary ? 999_999 : rng.pick([999_999, -7, ...values.map((v) => v.number)])) : rng.pick(values.map((v) => v.number));
  switch (field.fieldKind) {
    case "scalar":
      return scalar(field.scalar);
    case "enum":
      return enumValue(field.enum.values);
    case "message":
      return messageValue(field.message, rng, depth, hostile, primary);
    case "list": {
      // 2000 items at the top level; nested lists (a list of messages holding lists) stay at 20, or
      // their product grows past a gigabyte (integration's workflow definitions nest three lists).
      const n = primary ? 1 : hostile && rng.chance(0.2) ? (depth === 0 ? 2000 : 20) : rng.int(3);
      const items: unknown[] = [];
      for (let i = 0; i < n; i++) {
        if (field.listKind === "scalar") items.push(scalar(field.scalar));
        else if (field.listKind === "enum") items.push(enumValue(field.enum.values));
        else items.push(messageValue(field.message, rng, depth, hostile, primary));
      }
      return items;
    }
    case "map": {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < 1 + rng.int(3); i++) {
        const key =
          field.mapKey === ScalarType.STRING ? (hostile ? (primary ? "k\0" : rng.pick(HOSTILE_STRINGS.slice(0, 3))) : `k${i}`) : String(i);
        out[key] =
          field.mapKind === "scalar"
            ? scalar(field.scalar)
            : field.mapKind === "enum"
              ? enumValue(field.enum.values)
              : messageValue(field.message, rng, depth, hostile, primary);
      }
      return out;
    }
  }
}

/** Options of {@link generateInit}. */
export interface GenerateOptions {
  depth?: number;
  /** Share of set fields that get a hostile value (the rest get mild, plausible ones). */
  hostileRate?: number;
  /** Fields set to fixed values (e.g. tenant_id) unless the generator picks them as hostile. */
  fixed?: Readonly<Record<string, unknown>>;
  /**
   * The one field (top-level name) that gets a hostile value; every other field is plausible
   * and set more often, so the request gets past shape validation to the handler and the
   * database with exactly one bad value in it. Overrides `hostileRate`.
   */
  hostileField?: string;
  /** With `hostileField`: its most damaging value (NUL, 2^64−1, year 10000…) rather than a random hostile one. */
  primary?: boolean;
}

/**
 * A message init object for `desc`: each field set with probability ½ (oneofs: one member),
 * a share of them hostile (NULs, lone surrogates, 70 kB strings, 200 kB bytes, 2^64−1, NaN,
 * year 10000, nanos 2e9, unknown enum numbers, Structs nested 200 deep, 2000-item lists),
 * the rest plausible.
 */
export function generateInit(desc: DescMessage, rng: Rng, options: GenerateOptions = {}): Record<string, unknown> {
  const depth = options.depth ?? 0;
  const targeted = options.hostileField;
  const hostileRate = targeted !== undefined ? 0 : (options.hostileRate ?? 0.3);
  const isHostile = (field: DescField) => (targeted !== undefined ? field.name === targeted : rng.chance(hostileRate));
  const fillRate = targeted !== undefined ? 0.8 : 0.5;
  const out: Record<string, unknown> = {};
  if (depth > 3) return out;
  for (const field of desc.fields) {
    if (field.oneof) continue;
    const fixed = options.fixed?.[field.name];
    const hostile = isHostile(field);
    if (fixed !== undefined && !hostile) {
      out[field.localName] = fixed;
      continue;
    }
    if (!hostile && !rng.chance(fillRate)) continue;
    out[field.localName] = fieldValue(field, rng, depth, hostile, hostile && options.primary === true);
  }
  for (const oneof of desc.oneofs) {
    const targetedMember = oneof.fields.find((f) => f.name === targeted);
    if (!targetedMember && !rng.chance(0.7)) continue;
    const field = targetedMember ?? rng.pick(oneof.fields);
    const fixed = options.fixed?.[field.name];
    const hostile = isHostile(field);
    out[oneof.localName] = {
      case: field.localName,
      value: fixed !== undefined && !hostile ? fixed : fieldValue(field, rng, depth, hostile, hostile && options.primary === true),
    };
  }
  return out;
}

/** Binary encoding of a generated init, or undefined when protobuf-es itself refuses to encode it. */
export function encodeBinary(desc: DescMessage, init: Record<string, unknown>): Uint8Array | undefined {
  try {
    return toBinary(desc, create(desc, init as never));
  } catch {
    return undefined;
  }
}

/** JSON encoding of a generated init (protobuf JSON mapping), or undefined when it has none (NaN in a Struct). */
export function encodeJson(desc: DescMessage, init: Record<string, unknown>): string | undefined {
  try {
    return JSON.stringify(toJson(desc, create(desc, init as never)));
  } catch {
    return undefined;
  }
}

/** A JSON value of the wrong type for a field (a number for a string, a string for a message…). */
export function wrongJsonType(field: DescField, rng: Rng): unknown {
  if (field.fieldKind === "list") return rng.pick([{}, "x", 5]);
  if (field.fieldKind === "map") return rng.pick([[], "x", 5, { k: { deep: [] } }]);
  if (field.fieldKind === "message") return rng.pick(["x", 5, [], true]);
  if (field.fieldKind === "enum") return rng.pick(["NOT_A_VALUE", 1.5, {}, "\0", 99_999]);
  switch (field.scalar) {
    case ScalarType.STRING:
      return rng.pick([5, {}, [], true, null]);
    case ScalarType.BYTES:
      return rng.pick(["not base64 !!", 5, {}, "\0"]);
    case ScalarType.BOOL:
      return rng.pick(["yes", 1, {}]);
    default:
      return rng.pick(["abc", true, {}, [], 1.5, "1e400", "18446744073709551616", "-1", 1e300]);
  }
}

/**
 * A binary message whose field `field` (a string field) holds invalid UTF-8, appended after
 * `base` (the last occurrence of a field wins on decoding).
 */
export function withInvalidUtf8(base: Uint8Array, field: DescField): Uint8Array {
  const bad = Uint8Array.of(0x66, 0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80);
  const tag = varint((field.number << 3) | 2);
  return Buffer.concat([base, tag, varint(bad.byteLength), bad]);
}

/** A JSON object nested `depth` levels deep (`{"a":{"a":…}}`). */
export function deepJson(depth: number): string {
  return `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`;
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}
