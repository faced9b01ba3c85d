/**
 * Generates docs/openapi.json: an OpenAPI 3.1 description of every Nexus API RPC as the
 * Connect protocol serves it over plain HTTP (`POST /<package>.<Service>/<Method>`, proto3
 * canonical JSON), for REST users who will never touch a .proto file.
 *
 * Everything comes from the contracts, nothing is written by hand per RPC:
 * - shapes and buf.validate rules from the descriptors embedded in gen/ (the very descriptors
 *   the server decodes and validates with), for the services in NEXUS_SERVICES;
 * - descriptions from the .proto comments, read from `buf build` over proto/ (protoc-gen-es
 *   strips source info from the embedded descriptors);
 * - who may call each RPC from the permission table (services/kernel/authz/permissions.ts)
 *   and the error reasons from services/kernel/errors.ts;
 * - one example request per RPC, synthesised and checked with protovalidate, so it passes
 *   the server's validation as it stands.
 *
 * Run: `npm run openapi` (writes the file) and `npm run openapi:check` (fails when the file
 * is stale). Both compile to dist/ first: gen/ imports end in `.js`, which Node's type
 * stripping cannot map to the `.ts` sources.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DescEnum, DescField, DescMessage, DescMethod, DescOneof, DescService, JsonValue } from "@bufbuild/protobuf";
import { create, fromBinary, fromJson, getOption, hasOption, ScalarType, toJson } from "@bufbuild/protobuf";
import type { DescriptorProto, Duration, EnumDescriptorProto, FileDescriptorSet, Timestamp } from "@bufbuild/protobuf/wkt";
import { DurationSchema, FeatureSet_FieldPresence, FileDescriptorSetSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import type { Validator, Violation } from "@bufbuild/protovalidate";
import { createValidator } from "@bufbuild/protovalidate";
import type { FieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import {
  file_buf_validate_validate,
  Ignore,
  ViolationsSchema,
  field as validateField,
  message as validateMessage,
  oneof as validateOneof,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { NEXUS_SERVICES } from "../services/kernel/authz/all-services.js";
import { describePermission } from "../services/kernel/authz/permission-docs.js";
import { permissionOf, procedureOf } from "../services/kernel/authz/permissions.js";
import { ERROR_DOMAIN, REASONS } from "../services/kernel/errors.js";
import { isReadOnlyMethod } from "../services/kernel/interceptors/write-freeze.js";
import { printProtoFile, VALIDATE_PROTO_PATH, writeValidateProto } from "./write-validate-proto.js";

/** Where the document is written, relative to the repository root. */
export const OPENAPI_DOCUMENT_PATH = "docs/openapi.json";

/** A JSON value as the document holds it (undefined members are left out when written). */
export type Json = string | number | boolean | null | Json[] | JsonObject;

/** A JSON Schema (2020-12, the OpenAPI 3.1 dialect) or any other OpenAPI object. */
export type JsonObject = { [key: string]: Json | undefined };

/** Leading (else trailing) comment of each proto element, by fully-qualified name. */
export type ProtoComments = ReadonlyMap<string, string>;

/** Options of {@link buildOpenApiDocument}. */
export interface OpenApiOptions {
  /** The services to describe. Default: NEXUS_SERVICES (every Nexus API service). */
  services?: readonly DescService[];
  /** Descriptions; without them the document has none (see {@link readProtoComments}). */
  comments?: ProtoComments;
  /** `info.version`. Default "0.0.0"; the CLI uses package.json's version. */
  version?: string;
}

/** The name of the bearer security scheme. */
export const SECURITY_SCHEME = "apiKey";

/** Connect error codes (the JSON `code` strings) by the HTTP status the Connect protocol gives them. */
export const CONNECT_ERROR_STATUS: Readonly<Record<string, number>> = {
  canceled: 499,
  unknown: 500,
  invalid_argument: 400,
  deadline_exceeded: 504,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  resource_exhausted: 429,
  failed_precondition: 400,
  aborted: 409,
  out_of_range: 400,
  unimplemented: 501,
  internal: 500,
  unavailable: 503,
  data_loss: 500,
  unauthenticated: 401,
};

/** Connect's code string of a gRPC code number (canceled, invalid_argument, ...). */
function codeString(code: Code): string {
  return Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toLowerCase();
}

const HTTP_STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  429: "Too Many Requests",
  499: "Client Closed Request",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

const SCHEMA_REF = "#/components/schemas/";

// ---------------------------------------------------------------------------------------
// Comments from `buf build`
// ---------------------------------------------------------------------------------------

function cleanComment(text: string): string {
  const lines = text.split("\n").map((l) => (l.startsWith(" ") ? l.slice(1) : l).trimEnd());
  while (lines.length > 0 && lines[0] === "") lines.shift();
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.join("\n");
}

/**
 * The comments of every element of a FileDescriptorSet built with source info, keyed by
 * fully-qualified name: messages and enums by type name, fields, oneofs and enum values as
 * `<type name>.<name>`, services by type name, methods as `<service type name>.<method>`.
 */
export function commentsFromDescriptorSet(set: FileDescriptorSet): Map<string, string> {
  const out = new Map<string, string>();
  for (const file of set.file) {
    const byPath = new Map<string, string>();
    for (const loc of file.sourceCodeInfo?.location ?? []) {
      const text = cleanComment(loc.leadingComments ?? "") || cleanComment(loc.trailingComments ?? "");
      if (text !== "") byPath.set(loc.path.join("."), text);
    }
    const put = (name: string, path: number[]) => {
      const text = byPath.get(path.join("."));
      if (text !== undefined) out.set(name, text);
    };
    const enumType = (e: EnumDescriptorProto, name: string, path: number[]) => {
      put(name, path);
      e.value.forEach((v, i) => put(`${name}.${v.name}`, [...path, 2, i]));
    };
    const messageType = (m: DescriptorProto, name: string, path: number[]) => {
      put(name, path);
      m.field.forEach((f, i) => put(`${name}.${f.name}`, [...path, 2, i]));
      m.oneofDecl.forEach((o, i) => put(`${name}.${o.name}`, [...path, 8, i]));
      m.nestedType.forEach((n, i) => messageType(n, `${name}.${n.name}`, [...path, 3, i]));
      m.enumType.forEach((n, i) => enumType(n, `${name}.${n.name}`, [...path, 4, i]));
    };
    const prefix = file.package ? `${file.package}.` : "";
    file.messageType.forEach((m, i) => messageType(m, prefix + m.name, [4, i]));
    file.enumType.forEach((e, i) => enumType(e, prefix + e.name, [5, i]));
    file.service.forEach((s, i) => {
      put(prefix + s.name, [6, i]);
      s.method.forEach((m, j) => put(`${prefix}${s.name}.${m.name}`, [6, i, 2, j]));
    });
  }
  return out;
}

/**
 * Reads the .proto comments under `root`/proto with `buf build` (writing the vendored
 * validate.proto first, as every buf run here does). Throws with buf's message on failure.
 */
export function readProtoComments(root: string): Map<string, string> {
  // Rewrite only when it differs: other buf runs (tests in parallel) may be reading it.
  const validateProto = join(root, VALIDATE_PROTO_PATH);
  if (!existsSync(validateProto) || readFileSync(validateProto, "utf8") !== printProtoFile(file_buf_validate_validate.proto))
    writeValidateProto(root);
  const local = join(root, "node_modules", ".bin", "buf");
  const buf = existsSync(local) ? local : "buf";
  const r = spawnSync(buf, ["build", "-o", "-#format=binpb"], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`buf build failed (${r.status}):\n${r.stderr.toString("utf8")}`);
  return commentsFromDescriptorSet(fromBinary(FileDescriptorSetSchema, new Uint8Array(r.stdout)));
}

// ---------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------

/** proto3 JSON of the well-known types: they do not look like their message definitions. */
const WELL_KNOWN: Readonly<Record<string, JsonObject>> = {
  "google.protobuf.Timestamp": {
    type: "string",
    format: "date-time",
    description: "RFC 3339 timestamp in UTC, e.g. `2025-01-31T12:00:00Z`.",
  },
  "google.protobuf.Duration": {
    type: "string",
    pattern: "^-?[0-9]+(\\.[0-9]{1,9})?s$",
    description: "Duration in seconds with an `s` suffix and up to 9 fractional digits, e.g. `1.5s`.",
  },
  "google.protobuf.Struct": { type: "object", additionalProperties: true, description: "Any JSON object." },
  "google.protobuf.Value": { description: "Any JSON value." },
  "google.protobuf.ListValue": { type: "array", items: {}, description: "Any JSON array." },
  "google.protobuf.FieldMask": {
    type: "string",
    description: "Comma-separated field paths in lowerCamelCase, e.g. `displayName,description`.",
  },
  "google.protobuf.Empty": { type: "object", description: "Always `{}`." },
  "google.protobuf.Any": {
    type: "object",
    required: ["@type"],
    properties: { "@type": { type: "string", description: "`type.googleapis.com/<message type name>`." } },
    additionalProperties: true,
  },
  "google.protobuf.DoubleValue": { type: ["number", "null"], format: "double" },
  "google.protobuf.FloatValue": { type: ["number", "null"], format: "float" },
  "google.protobuf.Int64Value": { type: ["string", "null"], format: "int64", pattern: "^-?[0-9]+$" },
  "google.protobuf.UInt64Value": { type: ["string", "null"], format: "uint64", pattern: "^[0-9]+$" },
  "google.protobuf.Int32Value": { type: ["integer", "null"], format: "int32" },
  "google.protobuf.UInt32Value": { type: ["integer", "null"], minimum: 0, maximum: 4294967295 },
  "google.protobuf.BoolValue": { type: ["boolean", "null"] },
  "google.protobuf.StringValue": { type: ["string", "null"] },
  "google.protobuf.BytesValue": { type: ["string", "null"], format: "byte", contentEncoding: "base64" },
};

function is64Bit(t: ScalarType): boolean {
  return [ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64].includes(t);
}

function scalarSchema(t: ScalarType): JsonObject {
  switch (t) {
    case ScalarType.DOUBLE:
      return { type: "number", format: "double" };
    case ScalarType.FLOAT:
      return { type: "number", format: "float" };
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return { type: "integer", format: "int32" };
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return { type: "integer", minimum: 0, maximum: 4294967295 };
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return { type: "string", format: "int64", pattern: "^-?[0-9]+$" };
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return { type: "string", format: "uint64", pattern: "^[0-9]+$" };
    case ScalarType.BOOL:
      return { type: "boolean" };
    case ScalarType.STRING:
      return { type: "string" };
    case ScalarType.BYTES:
      return { type: "string", format: "byte", contentEncoding: "base64" };
    default: {
      const _exhaustive: never = t;
      return _exhaustive;
    }
  }
}

/** lower_snake_case → lowerCamelCase, as the proto3 JSON mapping spells field mask paths. */
function camelPath(path: string): string {
  return path
    .split(".")
    .map((p) => p.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()))
    .join(".");
}

function regexEscape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A field's buf.validate rules; undefined without any, or when they are switched off (`ignore: ALWAYS`). */
function fieldRules(field: DescField): FieldRules | undefined {
  if (!hasOption(field, validateField)) return undefined;
  const rules = getOption(field, validateField);
  return rules.ignore === Ignore.ALWAYS ? undefined : rules;
}

type NumericRules = {
  const: number | bigint;
  lessThan: { case: "lt" | "lte"; value: number | bigint } | { case: undefined; value?: undefined };
  greaterThan: { case: "gt" | "gte"; value: number | bigint } | { case: undefined; value?: undefined };
  in: (number | bigint)[];
  notIn: (number | bigint)[];
  finite?: boolean;
};

/** Applies number rules: JSON Schema keywords for JSON numbers, words for 64-bit (JSON strings). */
function applyNumericRules(schema: JsonObject, r: NumericRules, asString: boolean, notes: string[]): void {
  const lower = r.greaterThan.case;
  const upper = r.lessThan.case;
  const lo = r.greaterThan.value;
  const hi = r.lessThan.value;
  const outside = lo !== undefined && hi !== undefined && hi < lo; // protovalidate: gt > lt means "outside"
  const jsonValue = (v: number | bigint): Json => (asString ? String(v) : Number(v));
  if (asString || outside) {
    const parts: string[] = [];
    if (lower && lo !== undefined) parts.push(`${lower === "gt" ? "greater than" : "at least"} ${String(lo)}`);
    if (upper && hi !== undefined) parts.push(`${upper === "lt" ? "less than" : "at most"} ${String(hi)}`);
    if (parts.length > 0) notes.push(`Must be ${parts.join(outside ? " or " : " and ")}.`);
  } else {
    if (lower === "gt" && lo !== undefined) schema.exclusiveMinimum = Number(lo);
    if (lower === "gte" && lo !== undefined) schema.minimum = Number(lo);
    if (upper === "lt" && hi !== undefined) schema.exclusiveMaximum = Number(hi);
    if (upper === "lte" && hi !== undefined) schema.maximum = Number(hi);
  }
  if (r.in.length > 0) schema.enum = r.in.map(jsonValue);
  if (r.notIn.length > 0) schema.not = { enum: r.notIn.map(jsonValue) };
  if (r.finite) notes.push("Must be finite (not NaN or Infinity).");
}

/**
 * Maps the rules of one value (a singular field, a list item or a map value) onto its
 * schema where JSON Schema can say it, and into `notes` (words) where it cannot.
 */
function applyValueRules(schema: JsonObject, rules: FieldRules, notes: string[], enumDesc?: DescEnum): void {
  const t = rules.type;
  switch (t.case) {
    case "string": {
      const r = t.value;
      if (r.const !== "") schema.const = r.const;
      if (r.len > 0n) {
        schema.minLength = Number(r.len);
        schema.maxLength = Number(r.len);
      }
      if (r.minLen > 0n) schema.minLength = Number(r.minLen);
      if (r.maxLen > 0n) schema.maxLength = Number(r.maxLen);
      const patterns: string[] = [];
      if (r.pattern !== "") patterns.push(r.pattern);
      if (r.prefix !== "") patterns.push(`^${regexEscape(r.prefix)}`);
      if (r.suffix !== "") patterns.push(`${regexEscape(r.suffix)}$`);
      if (r.contains !== "") patterns.push(regexEscape(r.contains));
      if (patterns.length === 1) schema.pattern = patterns[0];
      else if (patterns.length > 1) schema.allOf = patterns.map((p) => ({ pattern: p }));
      if (r.notContains !== "") notes.push(`Must not contain \`${r.notContains}\`.`);
      if (r.in.length > 0) schema.enum = [...r.in];
      if (r.notIn.length > 0) schema.not = { enum: [...r.notIn] };
      if (r.minBytes > 0n) notes.push(`At least ${r.minBytes} bytes (UTF-8).`);
      if (r.maxBytes > 0n) notes.push(`At most ${r.maxBytes} bytes (UTF-8).`);
      if (r.lenBytes > 0n) notes.push(`Exactly ${r.lenBytes} bytes (UTF-8).`);
      const formats: Partial<Record<NonNullable<typeof r.wellKnown.case>, string>> = {
        email: "email",
        hostname: "hostname",
        ipv4: "ipv4",
        ipv6: "ipv6",
        uri: "uri",
        uriRef: "uri-reference",
        uuid: "uuid",
      };
      if (r.wellKnown.case !== undefined && r.wellKnown.value !== false) {
        const format = formats[r.wellKnown.case];
        if (format !== undefined) schema.format = format;
        else notes.push(`Must be a valid ${r.wellKnown.case}.`);
      }
      if (r.example.length > 0) schema.examples = [...r.example];
      break;
    }
    case "bytes": {
      const r = t.value;
      const len =
        r.len > 0n
          ? `exactly ${r.len}`
          : [r.minLen > 0n ? `at least ${r.minLen}` : "", r.maxLen > 0n ? `at most ${r.maxLen}` : ""].filter(Boolean).join(" and ");
      if (len) notes.push(`Decoded length: ${len} bytes.`);
      break;
    }
    case "int32":
    case "sint32":
    case "sfixed32":
    case "uint32":
    case "fixed32":
    case "float":
    case "double":
      applyNumericRules(schema, t.value, false, notes);
      if (t.value.example.length > 0) schema.examples = [...t.value.example];
      break;
    case "int64":
    case "sint64":
    case "sfixed64":
    case "uint64":
    case "fixed64":
      applyNumericRules(schema, t.value, true, notes);
      break;
    case "bool":
      if (t.value.const) schema.const = true;
      break;
    case "enum": {
      const r = t.value;
      if (enumDesc === undefined) break;
      let allowed = enumDesc.values;
      if (r.const !== 0 || r.in.length > 0 || r.notIn.length > 0) {
        allowed = allowed.filter(
          (v) => (r.const === 0 || v.number === r.const) && (r.in.length === 0 || r.in.includes(v.number)) && !r.notIn.includes(v.number),
        );
        schema.enum = allowed.map((v) => v.name);
      }
      break;
    }
    case "duration": {
      const r = t.value;
      const parts: string[] = [];
      if (r.greaterThan.case)
        parts.push(`${r.greaterThan.case === "gt" ? "longer than" : "at least"} ${durationText(r.greaterThan.value)}`);
      if (r.lessThan.case) parts.push(`${r.lessThan.case === "lt" ? "shorter than" : "at most"} ${durationText(r.lessThan.value)}`);
      if (parts.length > 0) notes.push(`Must be ${parts.join(" and ")}.`);
      break;
    }
    case "timestamp": {
      const r = t.value;
      const parts: string[] = [];
      if (r.greaterThan.case === "gtNow") parts.push("in the future");
      else if (r.greaterThan.case)
        parts.push(`${r.greaterThan.case === "gt" ? "after" : "at or after"} ${timestampText(r.greaterThan.value)}`);
      if (r.lessThan.case === "ltNow") parts.push("in the past");
      else if (r.lessThan.case) parts.push(`${r.lessThan.case === "lt" ? "before" : "at or before"} ${timestampText(r.lessThan.value)}`);
      if (r.within) parts.push(`within ${durationText(r.within)} of now`);
      if (parts.length > 0) notes.push(`Must lie ${parts.join(" and ")}.`);
      break;
    }
    case "fieldMask": {
      const r = t.value;
      if (r.in.length > 0) {
        const alt = r.in.map((p) => regexEscape(camelPath(p))).join("|");
        schema.pattern = `^(${alt})(,(${alt}))*$`;
        notes.push(`Paths allowed: ${r.in.map((p) => `\`${camelPath(p)}\``).join(", ")}.`);
      }
      if (r.notIn.length > 0) notes.push(`Paths not allowed: ${r.notIn.map((p) => `\`${camelPath(p)}\``).join(", ")}.`);
      break;
    }
    default:
      break;
  }
  for (const rule of rules.cel) notes.push(celNote(rule.id, rule.message, rule.expression));
  for (const expression of rules.celExpression) notes.push(celNote("", "", expression));
}

function durationText(v: Duration): string {
  return `\`${String(toJson(DurationSchema, v))}\``;
}

function timestampText(v: Timestamp): string {
  return `\`${String(toJson(TimestampSchema, v))}\``;
}

function celNote(id: string, message: string, expression: string): string {
  const what = message !== "" ? message : `\`${expression}\``;
  return id !== "" ? `Rule \`${id}\`: ${what}.`.replace(/\.\.$/, ".") : `Rule: ${what}.`.replace(/\.\.$/, ".");
}

function joinText(...parts: (string | undefined)[]): string | undefined {
  const text = parts.filter((p): p is string => p !== undefined && p !== "").join("\n\n");
  return text === "" ? undefined : text;
}

/** The first sentence of a comment, on one line (an operation's summary). */
function firstSentence(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const flat = text.replace(/\s*\n\s*/g, " ").trim();
  for (const m of flat.matchAll(/[.!?](?=\s|$)/g)) {
    const head = flat.slice(0, m.index + 1);
    if (!/\b(e\.g|i\.e|etc|vs)\.$/.test(head)) return head;
  }
  return flat;
}

/** Fields whose zero value (absent from the JSON) the server's validation rejects, and required oneofs. */
function zeroValueViolations(validator: Validator, desc: DescMessage): { fields: Set<string>; oneofs: Set<string> } {
  const fields = new Set<string>();
  const oneofs = new Set<string>();
  const result = validator.validate(desc, create(desc));
  for (const v of result.kind === "invalid" ? result.violations : []) {
    const first = v.field[0];
    if (first?.kind === "field" && first.parent.typeName === desc.typeName) fields.add(first.name);
    if (first?.kind === "oneof") oneofs.add(first.name);
  }
  return { fields, oneofs };
}

/** Builds the component schemas; one per message and enum reached. */
class SchemaBuilder {
  readonly schemas = new Map<string, JsonObject>();
  private readonly comments: ProtoComments;
  private readonly validator: Validator;

  constructor(comments: ProtoComments, validator: Validator) {
    this.comments = comments;
    this.validator = validator;
  }

  /** A reference to a message's component (or the inline schema of a well-known type). */
  messageRef(desc: DescMessage): JsonObject {
    const wkt = WELL_KNOWN[desc.typeName];
    if (wkt !== undefined) return structuredClone(wkt);
    this.addMessage(desc);
    return { $ref: SCHEMA_REF + desc.typeName };
  }

  private enumRef(desc: DescEnum): JsonObject {
    if (desc.typeName === "google.protobuf.NullValue") return { type: "null" };
    if (!this.schemas.has(desc.typeName)) {
      const values = desc.values.map((v) => {
        const c = this.comments.get(`${desc.typeName}.${v.name}`);
        return `- \`${v.name}\`${c ? `: ${c.replace(/\s*\n\s*/g, " ")}` : ""}`;
      });
      this.schemas.set(desc.typeName, {
        type: "string",
        enum: desc.values.map((v) => v.name),
        description: joinText(this.comments.get(desc.typeName), values.join("\n")),
      });
    }
    return { $ref: SCHEMA_REF + desc.typeName };
  }

  private addMessage(desc: DescMessage): void {
    if (this.schemas.has(desc.typeName)) return;
    const schema: JsonObject = { type: "object" };
    this.schemas.set(desc.typeName, schema); // before the fields: messages may be recursive
    const properties: JsonObject = {};
    const zero = zeroValueViolations(this.validator, desc);
    const required: string[] = [];
    for (const field of desc.fields) {
      properties[field.jsonName] = this.fieldSchema(field);
      if (zero.fields.has(field.name) || fieldRules(field)?.required === true) required.push(field.jsonName);
    }
    const notes: string[] = [];
    const allOf: JsonObject[] = [];
    for (const oneof of desc.oneofs) {
      const names = oneof.fields.map((f) => f.jsonName);
      const oneofRequired = zero.oneofs.has(oneof.name) || (hasOption(oneof, validateOneof) && getOption(oneof, validateOneof).required);
      notes.push(
        `${oneofRequired ? "Exactly" : "At most"} one of ${names.map((n) => `\`${n}\``).join(", ")}` +
          ` (oneof \`${oneof.name}\`${this.comments.has(`${desc.typeName}.${oneof.name}`) ? `: ${this.comments.get(`${desc.typeName}.${oneof.name}`)!.replace(/\s*\n\s*/g, " ")}` : ""}).`,
      );
      const pairs: JsonObject[] = [];
      for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) pairs.push({ required: [names[i]!, names[j]!] });
      if (pairs.length === 1) allOf.push({ not: pairs[0] });
      else if (pairs.length > 1) allOf.push({ not: { anyOf: pairs } });
      if (oneofRequired) allOf.push({ anyOf: names.map((n) => ({ required: [n] })) });
    }
    if (hasOption(desc, validateMessage)) {
      const rules = getOption(desc, validateMessage);
      for (const rule of rules.cel) notes.push(celNote(rule.id, rule.message, rule.expression));
      for (const expression of rules.celExpression) notes.push(celNote("", "", expression));
      for (const o of rules.oneof) {
        const names = o.fields.map((n) => desc.fields.find((f) => f.name === n)?.jsonName ?? n);
        notes.push(`${o.required ? "Exactly" : "At most"} one of ${names.map((n) => `\`${n}\``).join(", ")}.`);
      }
    }
    const description = joinText(this.comments.get(desc.typeName), notes.length > 0 ? notes.join(" ") : undefined);
    if (description !== undefined) schema.description = description;
    schema.properties = properties;
    if (required.length > 0) schema.required = required;
    if (allOf.length > 0) schema.allOf = allOf;
    if (desc.deprecated) schema.deprecated = true;
  }

  private valueSchema(kind: "scalar" | "enum" | "message", field: DescField, rules: FieldRules | undefined, notes: string[]): JsonObject {
    let schema: JsonObject;
    if (kind === "message") {
      schema = this.messageRef(field.message!);
    } else if (kind === "enum") {
      schema = this.enumRef(field.enum!);
    } else {
      schema = scalarSchema(field.scalar!);
    }
    if (rules !== undefined) applyValueRules(schema, rules, notes, kind === "enum" ? field.enum : undefined);
    return schema;
  }

  private fieldSchema(field: DescField): JsonObject {
    const rules = fieldRules(field);
    const notes: string[] = [];
    let schema: JsonObject;
    switch (field.fieldKind) {
      case "scalar":
        schema = this.valueSchema("scalar", field, rules, notes);
        break;
      case "enum":
        schema = this.valueSchema("enum", field, rules, notes);
        break;
      case "message":
        schema = this.valueSchema("message", field, rules, notes);
        break;
      case "list": {
        const r = rules?.type.case === "repeated" ? rules.type.value : undefined;
        schema = { type: "array", items: this.valueSchema(field.listKind, field, r?.items, notes) };
        if (r && r.minItems > 0n) schema.minItems = Number(r.minItems);
        if (r && r.maxItems > 0n) schema.maxItems = Number(r.maxItems);
        if (r?.unique) schema.uniqueItems = true;
        for (const rule of rules?.cel ?? []) notes.push(celNote(rule.id, rule.message, rule.expression));
        break;
      }
      case "map": {
        const r = rules?.type.case === "map" ? rules.type.value : undefined;
        schema = { type: "object", additionalProperties: this.valueSchema(field.mapKind, field, r?.values, notes) };
        if (field.mapKey === ScalarType.BOOL) schema.propertyNames = { enum: ["true", "false"] };
        else if (field.mapKey !== ScalarType.STRING) schema.propertyNames = { pattern: "^-?[0-9]+$" };
        if (r && r.minPairs > 0n) schema.minProperties = Number(r.minPairs);
        if (r && r.maxPairs > 0n) schema.maxProperties = Number(r.maxPairs);
        for (const rule of rules?.cel ?? []) notes.push(celNote(rule.id, rule.message, rule.expression));
        break;
      }
      default: {
        const _exhaustive: never = field;
        throw new Error(`unknown field kind ${String(_exhaustive)}`);
      }
    }
    if (rules?.ignore === Ignore.IF_ZERO_VALUE && (rules.type.case !== undefined || rules.cel.length > 0)) {
      notes.unshift("The rules apply only when it is set: empty or absent means unset.");
    }
    if (field.presence === FeatureSet_FieldPresence.EXPLICIT && (field.fieldKind === "scalar" || field.fieldKind === "enum")) {
      notes.unshift("Optional: absent means unset (not the zero value).");
    }
    if (is64Bit(field.scalar ?? ScalarType.STRING) && field.fieldKind === "scalar") {
      notes.push("A 64-bit integer, sent as a JSON string.");
    }
    const description = joinText(
      this.comments.get(`${field.parent.typeName}.${field.name}`),
      notes.length > 0 ? notes.join(" ") : undefined,
    );
    // Siblings of $ref are applied together with it in OpenAPI 3.1 (JSON Schema 2020-12).
    if (description !== undefined) {
      const own = "$ref" in schema ? undefined : schema.description;
      schema.description = typeof own === "string" ? joinText(description, own) : description;
    }
    if (field.deprecated) schema.deprecated = true;
    return schema;
  }
}

// ---------------------------------------------------------------------------------------
// Examples (checked with protovalidate)
// ---------------------------------------------------------------------------------------

const SAMPLE_TEXT = "How do I rotate an API key?";

/** Candidate JSON values for a string field, most telling first. */
function stringCandidates(field: DescField, rules: FieldRules | undefined): Json[] {
  const r = rules?.type.case === "string" ? rules.type.value : undefined;
  const out: Json[] = [...(r?.example ?? [])];
  if (r && r.const !== "") out.push(r.const);
  if (r) out.push(...r.in);
  if (r?.wellKnown.case === "email") out.push("ops@example.com");
  if (r?.wellKnown.case === "uri" || r?.wellKnown.case === "uriRef") out.push("https://example.com/");
  if (r?.wellKnown.case === "uuid") out.push("6f1c2a4e-8d3b-4f7a-9c10-2b5e7d9a1f34");
  if (r?.wellKnown.case === "hostname") out.push("example.com");
  const n = field.name;
  if (/(^|_)(query|question|prompt|text|content|input|message|body)$/.test(n)) out.push(SAMPLE_TEXT);
  if (/(^|_)(name|title)$/.test(n)) out.push("Demo");
  if (/email/.test(n)) out.push("ops@example.com");
  if (/(url|uri)$/.test(n)) out.push("https://example.com/");
  if (/date$/.test(n)) out.push("2025-01-31");
  if (/(sha256|hash|digest|checksum)/.test(n)) out.push("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  if (/feature/.test(n)) out.push("feature.audit_access");
  if (/(mime|media_type|content_type)/.test(n)) out.push("text/plain");
  out.push("demo", "demo-1", "example", "a", "demo.example", SAMPLE_TEXT);
  return out;
}

function numberCandidates(rules: FieldRules | undefined, asString: boolean): Json[] {
  const t = rules?.type;
  const out: (number | bigint)[] = [];
  if (t && t.case !== undefined && "greaterThan" in t.value && "lessThan" in t.value) {
    const r = t.value as unknown as NumericRules & { example: (number | bigint)[] };
    out.push(...r.example);
    if (r.const) out.push(r.const);
    out.push(...r.in);
    if (r.greaterThan.case === "gte") out.push(r.greaterThan.value);
    if (r.greaterThan.case === "gt") out.push(typeof r.greaterThan.value === "bigint" ? r.greaterThan.value + 1n : r.greaterThan.value + 1);
    if (r.lessThan.case === "lte") out.push(r.lessThan.value);
  }
  out.push(10, 1, 0);
  return out.map((v) => (asString ? String(v) : Number(v)));
}

/** Candidate JSON values for one value of a field (list items and map values included). */
function valueCandidates(
  field: DescField,
  kind: "scalar" | "enum" | "message",
  rules: FieldRules | undefined,
  depth: number,
  build: ExampleBuilder,
): Json[] {
  if (kind === "enum") {
    const values = field.enum!.values;
    return [...values.filter((v) => v.number !== 0), ...values.filter((v) => v.number === 0)].map((v) => v.name);
  }
  if (kind === "message") {
    const m = field.message!;
    switch (m.typeName) {
      case "google.protobuf.Timestamp":
        return ["2099-01-01T00:00:00Z", "2025-01-01T00:00:00Z"];
      case "google.protobuf.Duration":
        return ["3600s", "60s", "0s"];
      case "google.protobuf.Struct":
        return [{ lang: "en" }, {}];
      case "google.protobuf.Value":
        return ["demo"];
      case "google.protobuf.ListValue":
        return [["demo"]];
      case "google.protobuf.Empty":
        return [{}];
      case "google.protobuf.FieldMask": {
        const allowed = rules?.type.case === "fieldMask" ? rules.type.value.in.map(camelPath) : [];
        return allowed.length > 0 ? allowed : ["displayName"];
      }
      default:
        return depth > 4 ? [{}] : [build.example(m, depth + 1) ?? {}];
    }
  }
  const t = field.scalar!;
  switch (t) {
    case ScalarType.STRING:
      return stringCandidates(field, rules);
    case ScalarType.BOOL:
      return [true, false];
    case ScalarType.BYTES:
      return ["ZXhhbXBsZQ"];
    default:
      return numberCandidates(rules, is64Bit(t));
  }
}

function fieldCandidates(field: DescField, depth: number, build: ExampleBuilder): Json[] {
  const rules = fieldRules(field);
  switch (field.fieldKind) {
    case "list": {
      const r = rules?.type.case === "repeated" ? rules.type.value : undefined;
      return valueCandidates(field, field.listKind, r?.items, depth, build).map((v) => [v]);
    }
    case "map": {
      const r = rules?.type.case === "map" ? rules.type.value : undefined;
      const key = field.mapKey === ScalarType.STRING ? "demo" : field.mapKey === ScalarType.BOOL ? "true" : "1";
      return valueCandidates(field, field.mapKind, r?.values, depth, build).map((v) => ({ [key]: v }));
    }
    default:
      return valueCandidates(field, field.fieldKind, rules, depth, build);
  }
}

/** Minimal example requests that pass the server's validation (protovalidate, same rules). */
class ExampleBuilder {
  private readonly cache = new Map<string, JsonObject | undefined>();
  private readonly validator: Validator;

  constructor(validator: Validator) {
    this.validator = validator;
  }

  private violations(desc: DescMessage, json: JsonObject): Violation[] | "unparsable" {
    try {
      const r = this.validator.validate(desc, fromJson(desc, json as JsonValue));
      return r.kind === "valid" ? [] : r.kind === "invalid" ? r.violations : "unparsable";
    } catch {
      return "unparsable";
    }
  }

  /**
   * The smallest JSON request found that validates: the fields whose absence is a
   * violation, each with its first candidate value that satisfies its own rules, then
   * (for message-level rules) optional fields added one at a time while they reduce the
   * violations. Undefined when no valid example was found.
   */
  example(desc: DescMessage, depth = 0): JsonObject | undefined {
    if (this.cache.has(desc.typeName)) return this.cache.get(desc.typeName);
    this.cache.set(desc.typeName, undefined); // recursion guard
    const json: JsonObject = {};
    const zero = zeroValueViolations(this.validator, desc);
    const onField = (vs: Violation[], f: DescField) => vs.some((v) => v.field[0]?.kind === "field" && v.field[0].name === f.name);
    const needed = desc.fields.filter((f) => zero.fields.has(f.name) || fieldRules(f)?.required === true);
    for (const oneof of desc.oneofs)
      if (zero.oneofs.has(oneof.name) && oneof.fields[0]) needed.push(...this.oneofChoice(desc, oneof, depth));
    for (const f of needed) {
      for (const candidate of fieldCandidates(f, depth, this)) {
        const vs = this.violations(desc, { ...json, [f.jsonName]: candidate });
        if (vs !== "unparsable" && !onField(vs, f)) {
          json[f.jsonName] = candidate;
          break;
        }
      }
    }
    let current = this.violations(desc, json);
    // A message-level rule over fields already chosen (end_time after start_time): try their
    // other candidates, one field at a time, while that reduces the violations.
    for (const f of needed) {
      if (current !== "unparsable" && current.length === 0) break;
      if (json[f.jsonName] === undefined) continue;
      for (const candidate of fieldCandidates(f, depth, this)) {
        const next = this.violations(desc, { ...json, [f.jsonName]: candidate });
        if (next !== "unparsable" && !onField(next, f) && (current === "unparsable" || next.length < current.length)) {
          json[f.jsonName] = candidate;
          current = next;
          break;
        }
      }
    }
    for (const f of desc.fields) {
      if (current !== "unparsable" && current.length === 0) break;
      if (json[f.jsonName] !== undefined || f.oneof?.fields.some((o) => json[o.jsonName] !== undefined)) continue;
      for (const candidate of fieldCandidates(f, depth, this)) {
        const next = this.violations(desc, { ...json, [f.jsonName]: candidate });
        if (next !== "unparsable" && (current === "unparsable" || next.length < current.length)) {
          json[f.jsonName] = candidate;
          current = next;
          break;
        }
      }
    }
    const result = current !== "unparsable" && current.length === 0 ? json : undefined;
    this.cache.set(desc.typeName, result);
    return result;
  }

  private oneofChoice(desc: DescMessage, oneof: DescOneof, depth: number): DescField[] {
    for (const f of oneof.fields) {
      for (const candidate of fieldCandidates(f, depth, this)) {
        const vs = this.violations(desc, { [f.jsonName]: candidate });
        if (
          vs !== "unparsable" &&
          !vs.some((v) => v.field[0]?.kind === "oneof" || (v.field[0]?.kind === "field" && v.field[0].name === f.name))
        )
          return [f];
      }
    }
    return [oneof.fields[0]!];
  }
}

// ---------------------------------------------------------------------------------------
// The document
// ---------------------------------------------------------------------------------------

const INTRO = `Every Nexus RPC as plain HTTP, per the [Connect protocol](https://connectrpc.com/docs/protocol): \
generated from the Protobuf contracts (\`proto/\`), so it cannot drift from what the server decodes.

**Requests.** \`POST /<package>.<Service>/<Method>\` with \`Content-Type: application/json\` and the \
request message as the body in proto3 canonical JSON: lowerCamelCase field names, 64-bit integers as \
strings, enums by name, \`google.protobuf.Timestamp\` as RFC 3339 strings, \`Duration\` as \`"1.5s"\`, \
\`Struct\` as any JSON object, \`FieldMask\` as comma-separated lowerCamelCase paths. Absent fields take \
their zero value; responses omit fields that hold it. Field names are also accepted as in the proto \
(snake_case). Unknown fields are refused: a misspelt field name answers 400 \`invalid_argument\` \
naming the key, rather than being dropped. The same procedures also speak gRPC and \
gRPC-Web on the same port.

**Authentication.** \`Authorization: Bearer nxs_<key id>_<secret>\` (an API key), on every \
operation that does not say \`security: []\`. Each operation says who may call it.

**Errors.** A non-200 status with a Connect error body \`{"code", "message", "details"}\`. The status \
follows the code (invalid_argument, failed_precondition and out_of_range → 400, unauthenticated → 401, \
permission_denied → 403, not_found → 404, already_exists and aborted → 409, resource_exhausted → 429, \
canceled → 499, unknown, internal and data_loss → 500, unimplemented → 501, unavailable → 503, \
deadline_exceeded → 504). Nexus errors carry a \`google.rpc.ErrorInfo\` detail (domain \`${ERROR_DOMAIN}\`) whose \
\`reason\` is a stable machine code (QUOTA_EXCEEDED, RATE_LIMITED, …); rate and quota refusals add \
\`google.rpc.RetryInfo\`; validation failures add \`google.rpc.BadRequest\` and \`buf.validate.Violations\`. \
Each detail's \`value\` is the Protobuf-encoded message in base64, \`debug\` the same in JSON.

**Streaming RPCs** (marked \`x-connect-streaming\`) are not plain JSON: they use \
\`Content-Type: application/connect+json\` and the Connect envelope — each message is prefixed by one \
flags byte and a 4-byte big-endian length, and the response ends with an end-of-stream envelope (flags \
\`0x02\`) holding \`{"error"?, "metadata"?}\`. Errors of a stream arrive there, with HTTP status 200. \
Client and bidirectional streams need a Connect or gRPC client; server streams work with any HTTP client \
that reads the body incrementally.`;

function errorSchemas(builder: SchemaBuilder): void {
  const detailTypes = [ErrorInfoSchema, RetryInfoSchema, BadRequestSchema, ViolationsSchema];
  for (const d of detailTypes) builder.messageRef(d);
  builder.schemas.set("connect.Error", {
    type: "object",
    description: "A Connect error (the body of every non-200 unary response, and `error` of a stream's end).",
    required: ["code"],
    properties: {
      code: { type: "string", enum: Object.keys(CONNECT_ERROR_STATUS), description: "The error code (gRPC's codes in snake_case)." },
      message: { type: "string", description: "What went wrong, for people. Never contains secrets or internal causes." },
      details: { type: "array", items: { $ref: `${SCHEMA_REF}connect.ErrorDetail` } },
    },
  });
  builder.schemas.set("connect.ErrorDetail", {
    type: "object",
    description: `A typed error detail. Nexus sends ${detailTypes.map((d) => `\`${d.typeName}\``).join(", ")}; their JSON schemas are the components of the same name.`,
    required: ["type", "value"],
    properties: {
      type: { type: "string", description: "Fully-qualified Protobuf type name of the detail, e.g. `google.rpc.ErrorInfo`." },
      value: {
        type: "string",
        contentEncoding: "base64",
        description: "The detail in Protobuf binary, base64 (standard alphabet, no padding).",
      },
      debug: { description: "The same detail in proto3 JSON, for people and for clients without Protobuf." },
    },
    allOf: detailTypes.map((d) => ({
      if: { properties: { type: { const: d.typeName } }, required: ["type"] },
      // biome-ignore lint/suspicious/noThenProperty: JSON Schema's if/then, not a thenable.
      then: { properties: { debug: { $ref: SCHEMA_REF + d.typeName } } },
    })),
  });
  builder.schemas.set("connect.EndStreamResponse", {
    type: "object",
    description: "The last envelope of a Connect stream (flags `0x02`): the error, if the stream failed, and trailers.",
    properties: {
      error: { $ref: `${SCHEMA_REF}connect.Error` },
      metadata: { type: "object", additionalProperties: { type: "array", items: { type: "string" } } },
    },
  });
}

/**
 * The error statuses every unary operation lists: all of Connect's but 499 (canceled), which
 * only a client that gave up could "receive".
 */
const OPERATION_ERROR_STATUSES = [400, 401, 403, 404, 409, 429, 500, 501, 503, 504];

/** components.responses: one Connect error response per HTTP status, naming its codes and reasons. */
function errorResponses(): JsonObject {
  const byStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(CONNECT_ERROR_STATUS)) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  const reasonsByCode = new Map<string, string[]>();
  for (const [reason, code] of Object.entries(REASONS)) {
    const c = codeString(code);
    reasonsByCode.set(c, [...(reasonsByCode.get(c) ?? []), reason]);
  }
  const out: JsonObject = {};
  for (const status of OPERATION_ERROR_STATUSES) {
    const codes = byStatus.get(status) ?? [];
    const lines = codes.map((c) => {
      const reasons = reasonsByCode.get(c);
      return `- \`${c}\`${reasons ? `: reasons ${reasons.map((r) => `\`${r}\``).join(", ")}` : ""}`;
    });
    out[String(status)] = {
      description: `${HTTP_STATUS_TEXT[status] ?? "Error"}: a Connect error with code ${codes.map((c) => `\`${c}\``).join(" or ")}.\n\n${lines.join("\n")}`,
      headers: {
        "x-request-id": { $ref: "#/components/headers/RequestId" },
        ...(status === 429
          ? {
              "retry-after": {
                description: "With `RATE_LIMITED`: seconds until the refusing bucket holds a token (RetryInfo has the exact delay).",
                schema: { type: "string" },
              },
              "x-ratelimit-scope": {
                description: "With `RATE_LIMITED`: the bucket that refused, `api_key` or `tenant`.",
                schema: { type: "string", enum: ["api_key", "tenant"] },
              },
              "x-ratelimit-route-class": {
                description: "With `RATE_LIMITED`: the route class, `run`, `mutation`, `read` or `ops`.",
                schema: { type: "string" },
              },
              "x-ratelimit-retry-after-ms": { description: "With `RATE_LIMITED`: the wait in milliseconds.", schema: { type: "string" } },
            }
          : {}),
      },
      content: {
        "application/json": {
          schema: { $ref: `${SCHEMA_REF}connect.Error`, properties: { code: { enum: codes } } },
        },
      },
    };
  }
  return out;
}

const STREAMING_KIND: Readonly<Record<DescMethod["methodKind"], string | undefined>> = {
  unary: undefined,
  server_streaming: "server-streaming",
  client_streaming: "client-streaming",
  bidi_streaming: "bidi-streaming",
};

/**
 * The body of a Connect stream: bytes, not JSON. `x-connect-message` (and, for responses,
 * `x-connect-end-stream`) link the schemas of what the envelopes hold.
 */
function envelopeSchema(builder: SchemaBuilder, desc: DescMessage, many: boolean, ends: boolean): JsonObject {
  const schema: JsonObject = {
    type: "string",
    contentMediaType: "application/connect+json",
    description:
      `${many ? "A sequence of Connect envelopes (flags byte, 4-byte big-endian length, JSON), each holding" : "One Connect envelope (flags byte, 4-byte big-endian length, JSON) holding"} a \`${desc.typeName}\`` +
      (ends ? "; then an end-of-stream envelope (flags `0x02`) holding a `connect.EndStreamResponse`." : "."),
    "x-connect-message": builder.messageRef(desc),
  };
  if (ends) schema["x-connect-end-stream"] = { $ref: `${SCHEMA_REF}connect.EndStreamResponse` };
  return schema;
}

/** Whether an RPC takes an idempotency key: every unary RPC that changes state. */
function idempotent(method: DescMethod): boolean {
  return method.methodKind === "unary" && !isReadOnlyMethod(method.name);
}

function operation(
  builder: SchemaBuilder,
  examples: ExampleBuilder,
  comments: ProtoComments,
  service: DescService,
  method: DescMethod,
): JsonObject {
  const procedure = procedureOf(service.typeName, method.name);
  const permission = permissionOf(procedure);
  const comment = comments.get(`${service.typeName}.${method.name}`);
  const streaming = STREAMING_KIND[method.methodKind];
  const who = `**Who may call it:** ${describePermission(permission)}.`;
  const streamNote = streaming
    ? `**${streaming} RPC:** not a plain JSON call. The body is \`application/connect+json\` in Connect envelopes (see the introduction)` +
      (method.methodKind === "bidi_streaming" ? "; bidirectional streams also need HTTP/2." : ".")
    : undefined;
  const op: JsonObject = {
    operationId: `${service.name}_${method.name}`,
    tags: [service.typeName],
    summary: firstSentence(comment) ?? method.name,
    description: joinText(comment, streamNote, who),
    parameters: [
      "ConnectProtocolVersion",
      "ConnectTimeoutMs",
      "RequestId",
      "CorrelationId",
      ...(idempotent(method) ? ["IdempotencyKey"] : []),
    ].map((p) => ({ $ref: `#/components/parameters/${p}` })),
  };
  if (permission?.class === "public") op.security = [];
  if (permission !== undefined) {
    const p: JsonObject = { class: permission.class };
    if (permission.platform) p.platform = true;
    if (permission.feature) p.feature = permission.feature;
    op["x-nexus-permission"] = p;
  }
  if (method.deprecated) op.deprecated = true;
  const errors: JsonObject = {};
  // Public RPCs list 401 too: Authenticate answers it for the key under test in its body.
  for (const status of OPERATION_ERROR_STATUSES) errors[String(status)] = { $ref: `#/components/responses/${status}` };
  if (streaming === undefined) {
    const example = examples.example(method.input);
    if (example === undefined) process.emitWarning(`openapi: no valid example request found for ${procedure}`);
    op.requestBody = {
      required: true,
      content: { "application/json": { schema: builder.messageRef(method.input), ...(example !== undefined ? { example } : {}) } },
    };
    op.responses = {
      "200": {
        description: `OK: a \`${method.output.typeName}\`.`,
        headers: {
          "x-request-id": { $ref: "#/components/headers/RequestId" },
          ...(idempotent(method) ? { "idempotency-replayed": { $ref: "#/components/headers/IdempotencyReplayed" } } : {}),
        },
        content: { "application/json": { schema: builder.messageRef(method.output) } },
      },
      ...errors,
    };
  } else {
    op["x-connect-streaming"] = streaming;
    const clientStreams = method.methodKind !== "server_streaming";
    const serverStreams = method.methodKind !== "client_streaming";
    const example = clientStreams ? undefined : examples.example(method.input);
    op.requestBody = {
      required: true,
      description:
        `${clientStreams ? "Connect envelopes, each holding" : "One Connect envelope holding"} a \`${method.input.typeName}\`.` +
        (example !== undefined ? ` Example message (before framing): \`${JSON.stringify(example)}\`.` : ""),
      content: { "application/connect+json": { schema: envelopeSchema(builder, method.input, clientStreams, false) } },
    };
    op.responses = {
      "200": {
        description:
          `A Connect stream: ${serverStreams ? "envelopes" : "one envelope"} holding \`${method.output.typeName}\`, then the end-of-stream envelope. ` +
          "Errors after the call is accepted (including refused authentication) arrive in the end-of-stream envelope, with this status.",
        headers: { "x-request-id": { $ref: "#/components/headers/RequestId" } },
        content: { "application/connect+json": { schema: envelopeSchema(builder, method.output, serverStreams, true) } },
      },
      "415": {
        description: "Unsupported Media Type: the request was not `application/connect+json` (or another protocol this procedure speaks).",
      },
    };
  }
  return op;
}

function sortKeys(o: JsonObject): JsonObject {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

/**
 * Builds the OpenAPI 3.1 document for `services` (default: every Nexus API service): one
 * path per RPC, component schemas for every message and enum they reach, Connect error
 * responses per HTTP status, the bearer scheme, and per-operation permissions and examples.
 * Deterministic: same descriptors and comments, same document.
 */
export function buildOpenApiDocument(options: OpenApiOptions = {}): JsonObject {
  const services = options.services ?? NEXUS_SERVICES;
  const comments = options.comments ?? new Map<string, string>();
  const validator = createValidator();
  const builder = new SchemaBuilder(comments, validator);
  const examples = new ExampleBuilder(validator);
  const paths: JsonObject = {};
  const operationIds = new Set<string>();
  for (const service of services) {
    for (const method of service.methods) {
      const op = operation(builder, examples, comments, service, method);
      const id = String(op.operationId);
      if (operationIds.has(id)) throw new Error(`operationId ${id} is used twice (two services named ${service.name}?)`);
      operationIds.add(id);
      paths[procedureOf(service.typeName, method.name)] = { post: op };
    }
  }
  errorSchemas(builder);
  return {
    openapi: "3.1.1",
    info: {
      title: "Nexus API",
      version: options.version ?? "0.0.0",
      summary: "Multi-tenant platform for retrieval-augmented agents, over the Connect protocol (JSON over HTTP).",
      description: INTRO,
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    externalDocs: { description: "The Connect protocol", url: "https://connectrpc.com/docs/protocol" },
    servers: [{ url: "http://localhost:8080", description: "`nexus dev` or `nexus serve` on the default port (NEXUS_PORT)." }],
    security: [{ [SECURITY_SCHEME]: [] }],
    tags: services.map((s) => {
      const tag: JsonObject = { name: s.typeName };
      const d = comments.get(s.typeName);
      if (d !== undefined) tag.description = d;
      return tag;
    }),
    paths,
    components: {
      schemas: sortKeys(Object.fromEntries(builder.schemas)),
      responses: errorResponses(),
      parameters: {
        ConnectProtocolVersion: {
          name: "Connect-Protocol-Version",
          in: "header",
          description: "The Connect protocol version. Recommended: it tells proxies and the server this is a Connect call.",
          schema: { type: "string", const: "1" },
        },
        ConnectTimeoutMs: {
          name: "Connect-Timeout-Ms",
          in: "header",
          description: "Deadline of the call in milliseconds; past it the call fails with `deadline_exceeded`.",
          schema: { type: "string", pattern: "^[0-9]{1,10}$" },
        },
        RequestId: {
          name: "x-request-id",
          in: "header",
          description: "Your id for this request (logged and echoed back); the server makes one up when absent.",
          schema: { type: "string", maxLength: 128 },
        },
        IdempotencyKey: {
          name: "idempotency-key",
          in: "header",
          description:
            "1–128 printable ASCII characters naming this request, so a retry is answered once: within 24 h, the same key (per tenant, API key and method) with the same request gets the stored answer (header `idempotency-replayed: true`); with a different request, 409 `already_exists` IDEMPOTENCY_KEY_CONFLICT; while the first call still runs, the duplicate waits for it, then 409 `aborted` IDEMPOTENCY_IN_PROGRESS. Failed calls store nothing.",
          schema: { type: "string", minLength: 1, maxLength: 128, pattern: "^[\\x20-\\x7e]+$" },
        },
        CorrelationId: {
          name: "x-correlation-id",
          in: "header",
          description: "Ties several requests together in logs and events (defaults to the request id).",
          schema: { type: "string", maxLength: 128 },
        },
      },
      headers: {
        RequestId: {
          description: "The request's id: the one sent in `x-request-id`, or the one the server made up.",
          schema: { type: "string" },
        },
        IdempotencyReplayed: {
          description:
            "`true` when the answer is the stored answer of an earlier call with the same `idempotency-key` (the call did not run again).",
          schema: { type: "string", const: "true" },
        },
      },
      securitySchemes: {
        [SECURITY_SCHEME]: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "nxs_<key id>_<secret>",
          description:
            "A Nexus API key (`Authorization: Bearer nxs_…`). `nexus dev` prints a platform key and a demo tenant owner key on its first start.",
        },
      },
    },
  };
}

/** The document as committed: 2-space JSON with a final newline. */
export function renderOpenApiDocument(doc: JsonObject): string {
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** The repository root: the nearest folder above this module with package.json and proto/. */
export function repositoryRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "proto"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no repository root (package.json + proto/) above ${from}`);
    dir = parent;
  }
}

/** The full document text for the repository at `root`: comments from buf, version from package.json. */
export function generateOpenApi(root = repositoryRoot()): string {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version?: string };
  return renderOpenApiDocument(buildOpenApiDocument({ comments: readProtoComments(root), version: pkg.version ?? "0.0.0" }));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = repositoryRoot();
  const target = join(root, OPENAPI_DOCUMENT_PATH);
  const text = generateOpenApi(root);
  if (process.argv.includes("--check")) {
    const current = existsSync(target) ? readFileSync(target, "utf8") : "";
    if (current !== text) {
      process.stderr.write(
        `openapi:check: ${OPENAPI_DOCUMENT_PATH} is out of date with proto/ (or the permission table).\n` +
          "Run 'npm run openapi' and commit the result. Never edit it by hand.\n",
      );
      process.exit(1);
    }
    process.stdout.write(`openapi:check: ${OPENAPI_DOCUMENT_PATH} is up to date.\n`);
  } else {
    writeFileSync(target, text);
    process.stdout.write(`wrote ${target}\n`);
  }
}
