import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { DescMessage, DescService, JsonValue } from "@bufbuild/protobuf";
import { fromJson } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { Validator as OpenApiValidator } from "@seriousme/openapi-schema-validator";
import type { ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { beforeAll, describe, expect, it } from "vitest";
import { NEXUS_SERVICES } from "../services/kernel/authz/all-services.js";
import { PERMISSIONS } from "../services/kernel/authz/permissions.js";
import type { Json, JsonObject } from "./generate-openapi.js";
import {
  buildOpenApiDocument,
  CONNECT_ERROR_STATUS,
  generateOpenApi,
  OPENAPI_DOCUMENT_PATH,
  readProtoComments,
  repositoryRoot,
} from "./generate-openapi.js";

/** String formats the generator emits for buf.validate well-known string rules (not checked by the validator here). */
const TEXT_FORMATS = new Set(["email", "hostname", "ipv4", "ipv6", "uri", "uri-reference", "uuid"]);

const root = repositoryRoot();
const DOC_ID = "urn:nexus:openapi";

/** Every service declared in a nexus.* proto, found by importing each generated file under gen/nexus. */
async function generatedNexusServices(): Promise<DescService[]> {
  const dir = join(root, "gen", "nexus");
  const files = readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith("_pb.ts"));
  const found = new Map<string, DescService>();
  for (const f of files) {
    const mod = (await import(/* @vite-ignore */ join(dir, f))) as Record<string, unknown>;
    for (const v of Object.values(mod)) {
      if (typeof v === "object" && v !== null && (v as { kind?: unknown }).kind === "service") {
        const s = v as DescService;
        found.set(s.typeName, s);
      }
    }
  }
  return [...found.values()];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => v as Obj;
/** `/` and `~` escaped for a JSON pointer. */
const pointer = (...parts: string[]) => parts.map((p) => p.replaceAll("~", "~0").replaceAll("/", "~1")).join("/");

describe("scripts/generate-openapi", () => {
  let doc: JsonObject;
  let comments: Map<string, string>;
  let ajv: Ajv2020;
  const validator = createValidator();
  const compiled = new Map<string, ValidateFunction>();
  /** A validator for the schema at a JSON pointer into the document. */
  const schemaAt = (ptr: string): ValidateFunction => {
    let fn = compiled.get(ptr);
    if (fn === undefined) {
      fn = ajv.compile({ $ref: `${DOC_ID}#${ptr}` });
      compiled.set(ptr, fn);
    }
    return fn;
  };
  const componentSchema = (typeName: string) => obj(obj(obj(doc.components).schemas)[typeName]);
  const unaryMethods = () => NEXUS_SERVICES.flatMap((s) => s.methods.filter((m) => m.methodKind === "unary").map((m) => ({ s, m })));
  const requestExample = (path: string) =>
    obj(obj(obj(obj(obj(obj(obj(doc.paths)[path]).post).requestBody).content)["application/json"]).example);
  const serverAccepts = (desc: DescMessage, json: unknown): boolean => {
    try {
      return validator.validate(desc, fromJson(desc, json as JsonValue)).kind === "valid";
    } catch {
      return false; // unparsable JSON: the server answers invalid_argument as well
    }
  };

  beforeAll(() => {
    comments = readProtoComments(root);
    doc = buildOpenApiDocument({ comments, version: "0.0.0-test" });
    ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(structuredClone(doc) as object, DOC_ID);
  });

  it("writes docs/openapi.json exactly as the generator produces it now (run `npm run openapi` after changing proto/ or the permission table)", () => {
    const committed = readFileSync(join(root, OPENAPI_DOCUMENT_PATH), "utf8");
    expect(committed === generateOpenApi(root), `${OPENAPI_DOCUMENT_PATH} is stale: run npm run openapi`).toBe(true);
  });

  it("is a valid OpenAPI 3.1 document (official JSON schema, via @seriousme/openapi-schema-validator)", async () => {
    const v = new OpenApiValidator();
    const result = await v.validate(structuredClone(doc) as Record<string, unknown>);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(v.version).toBe("3.1");
  });

  it("has every component schema compile as JSON Schema 2020-12, every $ref resolving", () => {
    for (const name of Object.keys(obj(obj(doc.components).schemas))) {
      expect(() => schemaAt(`/${pointer("components", "schemas", name)}`), name).not.toThrow();
    }
  });

  it("documents every service generated under gen/nexus, one POST path per RPC", async () => {
    const generated = await generatedNexusServices();
    expect(generated.length).toBeGreaterThanOrEqual(6);
    expect(NEXUS_SERVICES.map((s) => s.typeName).sort()).toEqual(generated.map((s) => s.typeName).sort());
    const expected = generated.flatMap((s) => s.methods.map((m) => `/${s.typeName}/${m.name}`)).sort();
    expect(Object.keys(obj(doc.paths)).sort()).toEqual(expected);
    for (const path of expected) expect(Object.keys(obj(obj(doc.paths)[path])), path).toEqual(["post"]);
  });

  it("describes each unary RPC as JSON in, JSON out, with the Connect errors, the bearer key and who may call it", () => {
    const errorStatuses = new Set(
      Object.values(CONNECT_ERROR_STATUS)
        .filter((s) => s !== 499)
        .map(String),
    );
    for (const { s, m } of unaryMethods()) {
      const path = `/${s.typeName}/${m.name}`;
      const op = obj(obj(obj(doc.paths)[path]).post);
      expect(op["x-connect-streaming"], path).toBeUndefined();
      const body = obj(obj(op.requestBody).content);
      expect(Object.keys(body), path).toEqual(["application/json"]);
      expect(obj(obj(body["application/json"]).schema).$ref).toBe(`#/components/schemas/${m.input.typeName}`);
      const responses = obj(op.responses);
      const ok = obj(obj(obj(responses["200"]).content)["application/json"]).schema;
      expect(obj(ok).$ref).toBe(`#/components/schemas/${m.output.typeName}`);
      const listed = Object.keys(responses).filter((k) => k !== "200");
      const isPublic = PERMISSIONS[path]?.class === "public";
      expect(new Set(listed), path).toEqual(errorStatuses);
      expect(op.security, path).toEqual(isPublic ? [] : undefined);
      expect(String(op.description), path).toContain("**Who may call it:**");
      expect(op.operationId).toBe(`${s.name}_${m.name}`);
    }
    expect(doc.security).toEqual([{ apiKey: [] }]);
    expect(obj(obj(obj(doc.components).securitySchemes).apiKey)).toMatchObject({ type: "http", scheme: "bearer" });
    expect(obj(obj(obj(doc.components).responses)["400"]).description).toContain("`failed_precondition`");
  });

  it("marks streaming RPCs as Connect streams, not plain JSON, and still links their message schemas", () => {
    const streaming = NEXUS_SERVICES.flatMap((s) => s.methods.filter((m) => m.methodKind !== "unary").map((m) => ({ s, m })));
    expect(streaming.map(({ m }) => m.name)).toEqual(expect.arrayContaining(["Run", "WatchDocument", "UploadDocument"]));
    for (const { s, m } of streaming) {
      const op = obj(obj(obj(doc.paths)[`/${s.typeName}/${m.name}`]).post);
      expect(op["x-connect-streaming"]).toBe(m.methodKind.replace("_", "-"));
      expect(String(op.description)).toContain("not a plain JSON call");
      const req = obj(obj(obj(op.requestBody).content)["application/connect+json"]).schema;
      expect(obj(obj(req)["x-connect-message"]).$ref).toBe(`#/components/schemas/${m.input.typeName}`);
      const res = obj(obj(obj(obj(op.responses)["200"]).content)["application/connect+json"]).schema;
      expect(obj(obj(res)["x-connect-message"]).$ref).toBe(`#/components/schemas/${m.output.typeName}`);
      expect(obj(obj(obj(op.responses)["200"]).content)["application/json"]).toBeUndefined();
    }
  });

  it("maps buf.validate rules onto the request schemas", () => {
    const checkQuota = componentSchema("nexus.metering.v1.CheckQuotaRequest");
    expect(obj(checkQuota.properties).tenantId).toMatchObject({
      type: "string",
      minLength: 1,
      maxLength: 128,
      pattern: "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
    });
    expect(obj(checkQuota.properties).estimatedRunUnits).toMatchObject({ type: "number", minimum: 0, maximum: 1000000 });
    expect(checkQuota.required).toEqual(["tenantId", "requestId"]);

    // Enum `not_in: [0]` leaves the unspecified value out and makes the field required.
    const summary = componentSchema("nexus.metering.v1.GetUsageSummaryRequest");
    expect(obj(obj(summary.properties).period).enum).toEqual(["PERIOD_DAY", "PERIOD_MONTH"]);
    expect(summary.required).toEqual(["period"]);
    // IGNORE_IF_ZERO_VALUE: constrained, but not required.
    expect(obj(obj(summary.properties).tenantId).maxLength).toBe(128);
    expect(String(obj(obj(summary.properties).tenantId).description)).toContain("apply only when it is set");

    // A required oneof: exactly one of its members.
    const getTenant = componentSchema("nexus.auth.v1.GetTenantRequest");
    expect(JSON.stringify(getTenant.allOf)).toContain('"anyOf":[{"required":["tenantId"]},{"required":["slug"]}]');

    // `required` on a message field, field mask paths, and message-level CEL rules in words.
    const updateCorpus = componentSchema("nexus.retrieval.v1.UpdateCorpusRequest");
    expect(updateCorpus.required).toContain("updateMask");
    expect(obj(obj(updateCorpus.properties).updateMask).pattern).toMatch(/displayName/);
    expect(String(updateCorpus.description)).toContain("Rule `corpus.display_name.required`");

    // repeated max_items, uint32 lte, 64-bit integers as strings.
    const maxItems = Object.values(obj(obj(doc.components).schemas))
      .flatMap((s) => Object.values(obj(obj(s).properties ?? {})))
      .filter((p) => obj(p).type === "array" && typeof obj(p).maxItems === "number");
    expect(maxItems.length).toBeGreaterThan(0);
    const dailyRuns = obj(obj(componentSchema("nexus.metering.v1.SetQuotaRequest").properties).dailyRunsLimit);
    expect(dailyRuns).toMatchObject({ type: "string", format: "uint64" });

    // Well-known types per their JSON mapping.
    const expiresAt = obj(obj(componentSchema("nexus.auth.v1.CreateApiKeyRequest").properties).expiresAt);
    expect(expiresAt).toMatchObject({ type: "string", format: "date-time" });
    expect(String(expiresAt.description)).toContain("Must lie in the future");
  });

  it("takes descriptions from the .proto comments: every nexus message, field, enum and RPC has one", () => {
    expect(comments.get("nexus.metering.v1.CheckQuotaRequest.tenant_id")).toMatch(/^The tenant the run is for\./);
    const schemas = obj(obj(doc.components).schemas);
    for (const [name, schema] of Object.entries(schemas)) {
      if (!name.startsWith("nexus.")) continue;
      expect(obj(schema).description, name).toBeTruthy();
      for (const [prop, p] of Object.entries(obj(obj(schema).properties ?? {}))) expect(obj(p).description, `${name}.${prop}`).toBeTruthy();
    }
    const tenantId = obj(obj(obj(schemas["nexus.metering.v1.CheckQuotaRequest"]).properties).tenantId);
    expect(String(tenantId.description)).toMatch(/^The tenant the run is for\./);
    const op = obj(obj(obj(doc.paths)["/nexus.metering.v1.MeteringService/CheckQuota"]).post);
    expect(op.summary).toBe("Reserves one run against the tenant's quotas.");
    expect(obj((doc.tags as Json[])[0]).description).toBeTruthy();
    // Without comments the same document, minus the prose.
    const bare = buildOpenApiDocument({});
    expect(Object.keys(obj(bare.paths))).toEqual(Object.keys(obj(doc.paths)));
    expect(obj(obj(obj(bare.components).schemas)["nexus.metering.v1.CheckQuotaRequest"]).description).toBeUndefined();
  });

  it("gives every unary RPC an example request that its schema and the server's validation both accept", () => {
    for (const { s, m } of unaryMethods()) {
      const path = `/${s.typeName}/${m.name}`;
      const example = requestExample(path);
      expect(example, path).toBeDefined();
      const check = schemaAt(`/${pointer("components", "schemas", m.input.typeName)}`);
      expect(check(example), `${path}: ${JSON.stringify(check.errors)}`).toBe(true);
      expect(serverAccepts(m.input, example), `${path} example ${JSON.stringify(example)}`).toBe(true);
    }
  });

  it("never documents as invalid a request the server accepts (mutated examples: bounds + 1, bad patterns, missing required fields)", () => {
    let checked = 0;
    for (const { s, m } of unaryMethods()) {
      const example = requestExample(`/${s.typeName}/${m.name}`);
      const schema = componentSchema(m.input.typeName);
      const check = schemaAt(`/${pointer("components", "schemas", m.input.typeName)}`);
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const mutations: { what: string; value: Obj }[] = [];
      for (const name of required) {
        const { [name]: _dropped, ...rest } = example;
        mutations.push({ what: `without required ${name}`, value: rest });
      }
      for (const [name, p] of Object.entries(obj(schema.properties))) {
        const prop = obj(p);
        const bad: unknown[] = [];
        if (typeof prop.maxLength === "number") bad.push("a".repeat(prop.maxLength + 1));
        if (typeof prop.minLength === "number" && prop.minLength > 1) bad.push("a".repeat(prop.minLength - 1));
        if (typeof prop.pattern === "string" && prop.type === "string" && !/\[0-9\]\+\$$/.test(prop.pattern)) bad.push("§ not it §");
        if (typeof prop.maximum === "number") bad.push(prop.maximum + 1);
        if (typeof prop.exclusiveMaximum === "number") bad.push(prop.exclusiveMaximum);
        if (typeof prop.minimum === "number" && prop.minimum > -1e15) bad.push(prop.minimum - 1);
        if (typeof prop.exclusiveMinimum === "number") bad.push(prop.exclusiveMinimum);
        if (typeof prop.maxItems === "number" && Array.isArray(example[name]))
          bad.push(Array.from({ length: prop.maxItems + 1 }, () => (example[name] as unknown[])[0]));
        if (Array.isArray(prop.enum) && typeof prop.$ref === "string") {
          const all = (componentSchema(prop.$ref.split("/").pop()!).enum as string[]).filter((v) => !(prop.enum as string[]).includes(v));
          bad.push(...all);
        }
        for (const value of bad)
          mutations.push({ what: `${name} = ${JSON.stringify(value).slice(0, 40)}`, value: { ...example, [name]: value } });
      }
      for (const { what, value } of mutations) {
        if (check(value)) continue; // a mutation the schema still allows says nothing
        checked++;
        expect(serverAccepts(m.input, value), `${m.input.typeName} ${what}: the schema rejects it, the server must too`).toBe(false);
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it("never documents as valid a request the server rejects (mutated examples: values at the bounds, optional fields left out)", () => {
    // Cross-field rules (message-level CEL) are documented in words only: the schema cannot
    // say them, so their violations are not held against it.
    const fieldViolations = (desc: DescMessage, json: unknown): string[] | "unparsable" => {
      try {
        const r = validator.validate(desc, fromJson(desc, json as JsonValue));
        return r.kind === "invalid" ? r.violations.filter((v) => v.field.length > 0).map((v) => `${v.ruleId}: ${v.message}`) : [];
      } catch {
        return "unparsable";
      }
    };
    let checked = 0;
    for (const { s, m } of unaryMethods()) {
      const example = requestExample(`/${s.typeName}/${m.name}`);
      const schema = componentSchema(m.input.typeName);
      const check = schemaAt(`/${pointer("components", "schemas", m.input.typeName)}`);
      const required = new Set((schema.required as string[] | undefined) ?? []);
      const mutations: { what: string; value: Obj }[] = [];
      for (const name of Object.keys(example)) {
        if (required.has(name)) continue;
        const { [name]: _dropped, ...rest } = example;
        mutations.push({ what: `without optional ${name}`, value: rest });
      }
      for (const [name, p] of Object.entries(obj(schema.properties))) {
        const prop = obj(p);
        // A string format (email, uri, uuid …) is an annotation to the validator used here, so a
        // string of a bare length is not one "the schema calls valid".
        if (typeof prop.format === "string" && TEXT_FORMATS.has(prop.format)) continue;
        const edge: unknown[] = [];
        if (typeof prop.maxLength === "number") edge.push("a".repeat(prop.maxLength));
        if (typeof prop.minLength === "number") edge.push("a".repeat(prop.minLength));
        if (typeof prop.maximum === "number") edge.push(prop.maximum);
        if (typeof prop.minimum === "number" && prop.minimum > -1e15) edge.push(prop.minimum);
        if (typeof prop.exclusiveMaximum === "number") edge.push(prop.exclusiveMaximum - (prop.type === "integer" ? 1 : 1e-6));
        if (typeof prop.exclusiveMinimum === "number") edge.push(prop.exclusiveMinimum + (prop.type === "integer" ? 1 : 1e-6));
        if (typeof prop.maxItems === "number" && Array.isArray(example[name]))
          edge.push(Array.from({ length: prop.maxItems }, () => (example[name] as unknown[])[0]));
        if (Array.isArray(prop.enum)) edge.push(...(prop.enum as unknown[]));
        for (const value of edge)
          mutations.push({ what: `${name} = ${JSON.stringify(value).slice(0, 40)}`, value: { ...example, [name]: value } });
      }
      for (const { what, value } of mutations) {
        if (!check(value)) continue; // only what the schema calls valid is on trial here
        checked++;
        expect(fieldViolations(m.input, value), `${m.input.typeName} ${what}: the schema accepts it, the server must too`).toEqual([]);
      }
    }
    expect(checked).toBeGreaterThan(50);
  });

  it("describes Connect errors, with the detail types Nexus sends linked to their JSON schemas", () => {
    const error = componentSchema("connect.Error");
    expect(obj(obj(error.properties).code).enum).toEqual(
      expect.arrayContaining(["invalid_argument", "failed_precondition", "unauthenticated", "resource_exhausted"]),
    );
    const detailCheck = schemaAt(`/${pointer("components", "schemas", "connect.ErrorDetail")}`);
    const info = {
      type: "google.rpc.ErrorInfo",
      value: "",
      debug: { reason: "QUOTA_EXCEEDED", domain: "nexus.dev", metadata: { period: "day" } },
    };
    expect(detailCheck(info)).toBe(true);
    expect(detailCheck({ ...info, debug: { reason: 42 } })).toBe(false);
    const responses = obj(obj(doc.components).responses);
    const codesOf = (status: string) => obj(obj(obj(obj(obj(responses[status]).content)["application/json"]).schema).properties).code;
    expect(obj(codesOf("400")).enum).toEqual(["invalid_argument", "failed_precondition", "out_of_range"]);
    expect(obj(codesOf("409")).enum).toEqual(["already_exists", "aborted"]);
    expect(obj(codesOf("429")).enum).toEqual(["resource_exhausted"]);
    expect(String(obj(responses["429"]).description)).toContain("`QUOTA_EXCEEDED`");
  });
});
