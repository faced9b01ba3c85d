import { create } from "@bufbuild/protobuf";
import { Code, type ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  FieldMappingSchema,
  FieldType,
  NullStrategy,
  SqlOperation,
  StepType,
  WorkflowDefinitionSchema,
  WorkflowKind,
} from "../../../gen/nexus/integration/v1/resources_pb.js";
import { errorReason } from "../../kernel/errors.js";
import { appIdOfKey, appKeyDigest, generateAppKey } from "./app-key.js";
import { checkDefinition, mappingOf } from "./definition.js";
import { validatePayload } from "./field-schema.js";
import { markerForChange, markerForCreate } from "./kubernetes-managed.js";
import { EnvelopeError, newMasterSecret, openPayload, sealPayload } from "./payload-crypto.js";

describe("app keys", () => {
  it("names the app, stores only a digest, and differs every time", () => {
    const a = generateAppKey("0123456789abcdef01234567");
    const b = generateAppKey("0123456789abcdef01234567");
    expect(appIdOfKey(a.plaintext)).toBe("0123456789abcdef01234567");
    expect(a.plaintext).not.toBe(b.plaintext);
    expect(a.digest.equals(appKeyDigest(a.plaintext))).toBe(true);
    expect(a.digest.toString("hex")).not.toContain(a.plaintext.slice(-20));
  });
});

describe("payload envelopes (ING-05)", () => {
  const secret = newMasterSecret();
  it("round-trips, bound to the app", () => {
    const env = sealPayload("app1", secret, 3, { a: 1, s: "é" });
    expect(env).toMatchObject({ enc: "aes-256-gcm", kv: 3 });
    expect(openPayload("app1", secret, env)).toEqual({ a: 1, s: "é" });
    expect(() => openPayload("app2", secret, env)).toThrow(EnvelopeError);
  });
  it.each([
    [{ enc: "rot13", kv: 1, iv: "", ct: "", tag: "" }, "payload.enc"],
    [{ enc: "aes-256-gcm", kv: 0, iv: "", ct: "", tag: "" }, "payload.kv"],
    [{ enc: "aes-256-gcm", kv: 1, iv: 5, ct: "", tag: "" }, "payload.iv"],
    [{ enc: "aes-256-gcm", kv: 1, iv: "AAAA", ct: "", tag: "AAAAAAAAAAAAAAAAAAAAAA==" }, "payload.iv"],
  ])("refuses a malformed envelope %j naming %s", (env, field) => {
    try {
      openPayload("app1", secret, env);
      expect.unreachable();
    } catch (err) {
      expect((err as EnvelopeError).field).toBe(field);
    }
  });
  it("refuses a wrong key and altered data", () => {
    const env = sealPayload("app1", secret, 1, { a: 1 });
    expect(() => openPayload("app1", newMasterSecret(), env)).toThrow(/does not decrypt/);
    const altered = { ...env, ct: Buffer.from("xx").toString("base64") };
    expect(() => openPayload("app1", secret, altered)).toThrow(/does not decrypt/);
  });
});

describe("field schema", () => {
  const fields = [
    { name: "device", type: "string" as const, required: true },
    { name: "temp", type: "number" as const, required: false },
    { name: "at", type: "timestamp" as const, required: false },
    { name: "n", type: "integer" as const, required: false },
  ];
  it.each([
    [{ device: "d" }, []],
    [{}, ["device"]],
    [{ device: null }, ["device"]],
    [{ device: "d", temp: "hot" }, ["temp"]],
    [{ device: "d", at: "yesterday" }, ["at"]],
    [{ device: "d", at: "2026-01-01T00:00:00Z", n: 1.5 }, ["n"]],
    [{ device: "d", extra: { any: 1 } }, []],
  ])("%j → problems in %j", (payload, problemFields) => {
    expect(validatePayload(fields, payload).map((p) => p.field)).toEqual(problemFields);
  });
});

describe("workflow definitions checked at save time", () => {
  const dests = new Map([
    ["rest1", { kind: "rest" as const }],
    ["sql1", { kind: "sql" as const }],
  ]);
  const check = (def: Parameters<typeof create<typeof WorkflowDefinitionSchema>>[1]) =>
    checkDefinition(create(WorkflowDefinitionSchema, def), dests, (m) =>
      m.some((x) => x.column === "bad") ? ["column bad is not allowed"] : [],
    ).map((p) => p.field);
  it.each([
    ["a fine fan-out", { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: "rest1", transform: "{'a': b}" }] }, []],
    ["no targets", { kind: WorkflowKind.FAN_OUT }, ["definition.targets"]],
    ["unknown destination", { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: "nope" }] }, ["definition.targets[0].destination_id"]],
    [
      "bad condition",
      { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: "rest1", condition: "a = = b" }] },
      ["definition.targets[0].condition"],
    ],
    [
      "sql without table",
      { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: "sql1", sql: { operation: SqlOperation.INSERT } }] },
      ["definition.targets[0].sql.table"],
    ],
    [
      "bad mapping",
      { kind: WorkflowKind.FAN_OUT, targets: [{ destinationId: "sql1", sql: { table: "t", mappings: [{ source: "a", column: "bad" }] } }] },
      ["definition.targets[0].sql.mappings"],
    ],
    [
      "steps referencing nothing, wrong destination kind, empty expression",
      {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [
          { name: "c", type: StepType.CONDITION, expression: "", elseStep: "ghost" },
          { name: "r", type: StepType.REST_CALL, target: { destinationId: "sql1" } },
          { name: "d", type: StepType.DELAY },
        ],
      },
      [
        "definition.steps[0].else_step",
        "definition.steps[0].expression",
        "definition.steps[1].target.destination_id",
        "definition.steps[2].delay_ms",
      ],
    ],
    [
      "duplicate step names",
      {
        kind: WorkflowKind.SEQUENTIAL,
        steps: [
          { name: "a", type: StepType.TRANSFORM, expression: "$" },
          { name: "a", type: StepType.TRANSFORM, expression: "$" },
        ],
      },
      ["definition.steps[1].name"],
    ],
  ])("%s", (_name, def, fields) => {
    expect(check(def as never)).toEqual(fields);
  });
});

describe("field mappings from the API", () => {
  it("a mapping's default (a google.protobuf.Value) reaches the connectors as its JSON value", () => {
    const m = create(FieldMappingSchema, {
      source: "customer",
      column: "customer",
      type: FieldType.STRING,
      default: { kind: { case: "stringValue", value: "unknown" } },
      nullStrategy: NullStrategy.DEFAULT,
    });
    expect(mappingOf(m)).toEqual({ source: "customer", column: "customer", type: "string", default: "unknown", nullStrategy: "default" });
  });
});

describe("objects managed by Kubernetes", () => {
  const managed = { name: "orders", kubernetesResource: "Workflow default/orders" };
  const reasonOf = (fn: () => unknown) => {
    try {
      fn();
      return "allowed";
    } catch (err) {
      return `${Code[(err as ConnectError).code]} ${errorReason(err)}: ${(err as Error).message}`;
    }
  };
  it("refuses an edit that does not come from the declaring resource, naming it", () => {
    expect(reasonOf(() => markerForChange("workflow", managed, {}))).toMatch(
      /^FailedPrecondition MANAGED_BY_KUBERNETES: .*workflow "orders" is managed by Kubernetes \(Workflow default\/orders\)/,
    );
    expect(reasonOf(() => markerForChange("workflow", managed, { platform: true, kubernetesResource: "Workflow other/x" }))).toMatch(
      /MANAGED_BY_KUBERNETES/,
    );
    expect(markerForChange("workflow", managed, { platform: true, kubernetesResource: "Workflow default/orders" })).toBe(
      "Workflow default/orders",
    );
  });
  it("lets only a platform principal set the marker (adopting an unmanaged object too)", () => {
    expect(reasonOf(() => markerForCreate({ kubernetesResource: "Workflow default/orders" }))).toMatch(/^PermissionDenied RBAC_FORBIDDEN/);
    expect(markerForChange("workflow", { name: "x", kubernetesResource: "" }, { platform: true, kubernetesResource: "Workflow d/x" })).toBe(
      "Workflow d/x",
    );
    expect(markerForChange("workflow", { name: "x", kubernetesResource: "" }, {})).toBe("");
  });
});
