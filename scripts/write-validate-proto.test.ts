import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DescMessage, Message } from "@bufbuild/protobuf";
import { clone, equals, fromBinary, toJson } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type { DescriptorProto, FieldDescriptorProto, FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { afterAll, describe, expect, it } from "vitest";
import { printProtoFile, VALIDATE_PROTO_PATH, writeValidateProto } from "./write-validate-proto.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const buf = join(root, "node_modules", ".bin", "buf");
const scratch = mkdtempSync(join(tmpdir(), "nexus-validate-proto-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Compiles `files` (path → source) with buf and returns the descriptor of `target`. */
function compile(name: string, files: Record<string, string>, target: string): FileDescriptorProto {
  const dir = join(scratch, name);
  for (const [path, source] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), source);
  }
  writeFileSync(join(dir, "buf.yaml"), "version: v2\n");
  const out = join(dir, "image.binpb");
  execFileSync(buf, ["build", "--as-file-descriptor-set", "--exclude-source-info", "-o", out], {
    cwd: dir,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const set = fromBinary(FileDescriptorSetSchema, readFileSync(out));
  const file = set.file.find((f) => f.name === target);
  if (file === undefined) throw new Error(`${target} not in the compiled image`);
  return file;
}

/**
 * A copy without what the printer deliberately leaves out: custom options (unknown fields
 * of the options messages, e.g. protovalidate's `(predefined)` rules) and source info.
 * Options messages left empty are cleared, since an unprinted option yields no message.
 */
function withoutCustomOptions(file: FileDescriptorProto): FileDescriptorProto {
  const copy = clone(FileDescriptorProtoSchema, file);
  copy.sourceCodeInfo = undefined;
  const strip = (msg: Message & { $unknown?: unknown }): void => {
    delete msg.$unknown;
  };
  const walk = (desc: DescMessage, msg: Message): void => {
    const r = reflect(desc, msg);
    for (const field of r.fields) {
      if (!r.isSet(field)) continue;
      if (field.fieldKind === "message") {
        const child = r.get(field).message as Message & { $unknown?: unknown };
        if (field.name === "options") {
          strip(child);
          if (reflect(field.message, child).fields.every((f) => !reflect(field.message, child).isSet(f))) {
            r.clear(field);
            continue;
          }
        }
        walk(field.message, child);
      } else if (field.fieldKind === "list" && field.listKind === "message") {
        for (const item of r.get(field)) walk(field.message, (item as { message: Message }).message);
      }
    }
  };
  walk(FileDescriptorProtoSchema, copy);
  return copy;
}

function messageNames(messages: DescriptorProto[], prefix = ""): string[] {
  return messages.flatMap((m) => [prefix + m.name, ...messageNames(m.nestedType, `${prefix}${m.name}.`)]);
}

function fieldSignatures(messages: DescriptorProto[], prefix = ""): string[] {
  const sig = (owner: string, f: FieldDescriptorProto): string =>
    `${owner}.${f.name}=${f.number} ${FieldDescriptorProto_Label[f.label]} ${FieldDescriptorProto_Type[f.type]} ${f.typeName} ${f.jsonName}`;
  return messages.flatMap((m) => [...m.field.map((f) => sig(prefix + m.name, f)), ...fieldSignatures(m.nestedType, `${prefix}${m.name}.`)]);
}

describe("write-validate-proto", () => {
  const embedded = file_buf_validate_validate.proto;
  const printed = printProtoFile(embedded);
  const compiled = compile("validate", { "buf/validate/validate.proto": printed }, "buf/validate/validate.proto");

  it("prints validate.proto so that buf compiles it to the same messages, fields and types", () => {
    expect(messageNames(compiled.messageType)).toEqual(messageNames(embedded.messageType));
    expect(fieldSignatures(compiled.messageType)).toEqual(fieldSignatures(embedded.messageType));
    expect(compiled.enumType.map((e) => [e.name, e.value.map((v) => `${v.name}=${v.number}`)])).toEqual(
      embedded.enumType.map((e) => [e.name, e.value.map((v) => `${v.name}=${v.number}`)]),
    );
    expect(compiled.extension.map((x) => `${x.extendee} ${x.name}=${x.number} ${x.typeName}`)).toEqual(
      embedded.extension.map((x) => `${x.extendee} ${x.name}=${x.number} ${x.typeName}`),
    );
    // Sanity: the rules protovalidate relies on are really there.
    expect(fieldSignatures(compiled.messageType)).toContain("StringRules.pattern=6 OPTIONAL STRING  pattern");
  });

  it("round-trips the whole descriptor except custom options", () => {
    const want = withoutCustomOptions(embedded);
    const got = withoutCustomOptions(compiled);
    expect(toJson(FileDescriptorProtoSchema, got)).toEqual(toJson(FileDescriptorProtoSchema, want));
    // Field-by-field equality of everything else: syntax, package, dependencies, file
    // options, oneofs, extension ranges, reserved ranges and names, json names.
    expect(equals(FileDescriptorProtoSchema, got, want)).toBe(true);
  });

  it("says in the file why custom options are missing", () => {
    expect(printed).toMatch(/`\(predefined\)` CEL rules/);
    expect(printed).toMatch(/imports that descriptor from @bufbuild\/protovalidate\/gen/);
  });

  it("prints proto3 and editions features it does not need for validate.proto", () => {
    const proto3 = `syntax = "proto3";
package demo.v1;
import "google/protobuf/descriptor.proto";
option java_multiple_files = true;
option optimize_for = CODE_SIZE;
extend google.protobuf.FieldOptions { optional string note = 50001; }
message Outer {
  message Inner { repeated int64 xs = 1 [packed = false]; }
  enum Kind { option allow_alias = true; KIND_UNSPECIFIED = 0; KIND_A = 1; KIND_ALIAS = 1 [deprecated = true]; reserved 5 to 9, 100 to max; reserved "KIND_OLD"; }
  map<string, Inner> by_name = 1;
  optional string maybe = 2 [json_name = "perhaps"];
  oneof choice { Kind kind = 3; bytes blob = 4; }
  string first_name = 5 [deprecated = true];
  repeated Inner inners = 6;
  reserved 10 to 12, 20;
  reserved "gone";
}
service DemoService {
  rpc Unary(Outer) returns (Outer) { option idempotency_level = NO_SIDE_EFFECTS; }
  rpc Streams(stream Outer) returns (stream Outer.Inner);
}
`;
    const editions = `edition = "2023";
package demo.v2;
option features.field_presence = IMPLICIT;
message Thing {
  string name = 1;
  int32 count = 2 [features.field_presence = EXPLICIT];
  string must = 3 [features.field_presence = LEGACY_REQUIRED];
  repeated int32 packed_ints = 4;
  repeated int32 loose = 5 [features.repeated_field_encoding = EXPANDED];
  reserved old_name;
}
enum Color { option features.enum_type = CLOSED; COLOR_UNSPECIFIED = 0; COLOR_RED = 1; }
`;
    for (const [name, source] of [
      ["demo/v1/demo.proto", proto3],
      ["demo/v2/thing.proto", editions],
    ] as const) {
      const first = compile(`fixture-${name.replace(/\W/g, "_")}-a`, { [name]: source }, name);
      const second = compile(`fixture-${name.replace(/\W/g, "_")}-b`, { [name]: printProtoFile(first) }, name);
      // toJson first for a readable diff, then exact equality (JSON drops nothing here).
      expect(toJson(FileDescriptorProtoSchema, second), name).toEqual(toJson(FileDescriptorProtoSchema, first));
      expect(equals(FileDescriptorProtoSchema, second, first), name).toBe(true);
    }
  });

  it("writes the file where buf.yaml's module expects it", () => {
    const target = writeValidateProto(join(scratch, "repo"));
    expect(target).toBe(join(scratch, "repo", VALIDATE_PROTO_PATH));
    expect(readFileSync(target, "utf8")).toBe(printed);
  });
});
