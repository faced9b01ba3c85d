import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { Validator as OpenApiValidator } from "@seriousme/openapi-schema-validator";
import type { ValidateFunction } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeteringService } from "../gen/nexus/metering/v1/metering_service_pb.js";
import { createOpenApiEndpoint, OPENAPI_PATH } from "../services/kernel/server/openapi-endpoint.js";
import type { NexusServer } from "../services/kernel/server/server.js";
import { createServer } from "../services/kernel/server/server.js";
import { connectJsonStream } from "./support/connect-json-stream.js";
import { type NexusProcess, startNexus, tempDir } from "./support/nexus-process.js";

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => v as Obj;
const COMMITTED = JSON.parse(readFileSync("docs/openapi.json", "utf8")) as Obj;
const DOC_ID = "urn:nexus:served-openapi";

async function validOpenApi31(doc: Obj): Promise<void> {
  const v = new OpenApiValidator();
  const result = await v.validate(structuredClone(doc));
  expect(result.errors ?? []).toEqual([]);
  expect(v.version).toBe("3.1");
}

/** JSON Schema validation of bodies against the schemas at JSON pointers into a document. */
function schemaValidator(doc: Obj): (ptr: string, value: unknown) => string | undefined {
  const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
  ajv.addSchema(structuredClone(doc) as object, DOC_ID);
  const compiled = new Map<string, ValidateFunction>();
  return (ptr, value) => {
    let fn = compiled.get(ptr);
    if (!fn) {
      fn = ajv.compile({ $ref: `${DOC_ID}#${ptr}` });
      compiled.set(ptr, fn);
    }
    return fn(value) ? undefined : ajv.errorsText(fn.errors);
  };
}

const escapePointer = (p: string) => p.replaceAll("~", "~0").replaceAll("/", "~1");

describe("GET /openapi.json on a kernel server", () => {
  let server: NexusServer;
  let url: string;

  beforeAll(async () => {
    server = createServer({
      logger: pino({ level: "silent" }),
      collectDefaultMetrics: false,
      services: [{ name: "metering", register: (router) => router.service(MeteringService, {}) }],
      // Every RPC refused: the document must not need a key.
      authenticate: async () => {
        throw new ConnectError("no key", Code.Unauthenticated);
      },
    });
    url = (await server.listen({ port: 0, host: "127.0.0.1" })).url;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves the generated document without a key, cut to the mounted services", async () => {
    const res = await fetch(`${url}${OPENAPI_PATH}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const doc = (await res.json()) as Obj;
    await validOpenApi31(doc);
    const paths = Object.keys(obj(doc.paths));
    const metering = Object.keys(obj(COMMITTED.paths)).filter((p) => p.startsWith(`/${MeteringService.typeName}/`));
    expect(paths.sort()).toEqual(metering.sort());
    expect(paths.length).toBe(MeteringService.methods.length);
    expect((doc.tags as Obj[]).map((t) => t.name)).toEqual([MeteringService.typeName]);
    const schemas = Object.keys(obj(obj(doc.components).schemas));
    expect(schemas).toContain("nexus.metering.v1.CheckQuotaRequest");
    expect(schemas).toContain("connect.Error");
    expect(schemas).toContain("google.rpc.ErrorInfo"); // reached through the error responses
    expect(schemas.some((s) => s.startsWith("nexus.auth."))).toBe(false);
    expect(doc.servers).toEqual([{ url: "/", description: "This server." }]);
    // Every reference left in the cut document still resolves.
    const check = schemaValidator(doc);
    for (const name of schemas) expect(() => check(`/components/schemas/${escapePointer(name)}`, {}), name).not.toThrow();
  });

  it("answers HEAD without a body and refuses other methods", async () => {
    const head = await fetch(`${url}${OPENAPI_PATH}`, { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
    const post = await fetch(`${url}${OPENAPI_PATH}`, { method: "POST", body: "{}" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });

  it("says so with 404 when the build ships no document", async () => {
    const endpoint = createOpenApiEndpoint({
      services: () => [],
      logger: pino({ level: "silent" }),
      documentPath: "/nonexistent/openapi.json",
    });
    const plainServer = http.createServer((req, res) => {
      if (!endpoint(req, res)) res.writeHead(418).end();
    });
    await new Promise<void>((r) => plainServer.listen(0, "127.0.0.1", r));
    try {
      const base = `http://127.0.0.1:${(plainServer.address() as AddressInfo).port}`;
      const res = await fetch(`${base}${OPENAPI_PATH}`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as Obj).error).toMatch(/no OpenAPI document/);
      expect((await fetch(`${base}/other`)).status).toBe(418);
    } finally {
      await new Promise((r) => plainServer.close(r));
    }
  });
});

describe("the OpenAPI document against a running `nexus dev`", () => {
  let nexus: NexusProcess;
  let served: Obj;
  let ownerKey: string;
  let check: (ptr: string, value: unknown) => string | undefined;
  const data = tempDir();

  beforeAll(async () => {
    nexus = await startNexus({ args: ["dev", "--port", "0", "--host", "127.0.0.1", "--data-dir", data.dir] });
    const keyPattern = /owner key \([0-9a-f]+\):\s+(nxs_[0-9a-f]{24}_[A-Za-z0-9_-]{43})/;
    for (let i = 0; i < 200 && !keyPattern.test(nexus.output()); i++) await new Promise((r) => setTimeout(r, 50));
    ownerKey = keyPattern.exec(nexus.output())?.[1] ?? "";
    expect(ownerKey, "nexus dev prints the demo owner key on first start").not.toBe("");
    const res = await fetch(`${nexus.url}${OPENAPI_PATH}`);
    expect(res.status).toBe(200);
    served = (await res.json()) as Obj;
    check = schemaValidator(served);
  });
  afterAll(async () => {
    await nexus?.stop();
    data.remove();
  });

  /** POSTs a unary RPC the way the document says: JSON body, bearer key. */
  const call = (path: string, body: unknown, key: string | null = ownerKey) =>
    fetch(`${nexus.url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "connect-protocol-version": "1",
        ...(key !== null ? { authorization: `Bearer ${key}` } : {}),
      },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(20_000),
    });

  /** The schema pointer of a documented response (following a `$ref` to components.responses). */
  const responseSchemaPointer = (path: string, status: string): string | undefined => {
    const response = obj(obj(obj(obj(served.paths)[path]).post).responses)[status];
    if (response === undefined) return undefined;
    const ref = obj(response).$ref;
    const base = typeof ref === "string" ? ref.slice(1) : `/paths/${escapePointer(path)}/post/responses/${status}`;
    return `${base}/content/${escapePointer("application/json")}/schema`;
  };

  it("serves a valid OpenAPI 3.1 document describing every RPC `nexus dev` mounts", async () => {
    await validOpenApi31(served);
    expect(Object.keys(obj(served.paths)).sort()).toEqual(Object.keys(obj(COMMITTED.paths)).sort());
  });

  it("answers every unary RPC, called with its documented example, with a documented response", async () => {
    const outcomes: Record<string, number> = {};
    for (const [path, item] of Object.entries(obj(served.paths))) {
      const op = obj(obj(item).post);
      if (op["x-connect-streaming"] !== undefined) continue;
      const example = obj(obj(obj(obj(op.requestBody).content)["application/json"]).example);
      const res = await call(path, example);
      const status = String(res.status);
      const body = (await res.json()) as unknown;
      const pointer = responseSchemaPointer(path, status);
      expect(pointer, `${path} answered ${status} ${JSON.stringify(body)}, which the document does not list`).toBeDefined();
      expect(check(pointer!, body), `${path} ${status} ${JSON.stringify(body).slice(0, 300)}`).toBeUndefined();
      if (status !== "200") expect(String(obj(body).code)).not.toBe("internal");
      outcomes[path] = res.status;
    }
    // Some succeed outright for the demo owner, some are refused by rule — all in the documented shapes.
    expect(outcomes["/nexus.auth.v1.AuthService/WhoAmI"]).toBe(200);
    expect(outcomes["/nexus.retrieval.v1.RetrievalService/ListCorpora"]).toBe(200);
    expect(outcomes["/nexus.auth.v1.AuthService/CreateTenant"]).toBe(403); // platform only
    expect(Object.values(outcomes).filter((s) => s === 200).length).toBeGreaterThan(5);
  });

  it("refuses a call without a key with the documented 401 Connect error", async () => {
    const path = "/nexus.auth.v1.AuthService/WhoAmI";
    const res = await call(path, {}, null);
    expect(res.status).toBe(401);
    const body = obj(await res.json());
    expect(check(responseSchemaPointer(path, "401")!, body)).toBeUndefined();
    expect(body.code).toBe("unauthenticated");
    const info = (body.details as Obj[]).find((d) => d.type === "google.rpc.ErrorInfo");
    expect(obj(info?.debug).domain).toBe("nexus.dev");
  });

  it("rejects a body that breaks a documented constraint with 400 and the documented violation details", async () => {
    const path = "/nexus.metering.v1.MeteringService/GetUsageSummary";
    const schema = obj(obj(obj(served.components).schemas)["nexus.metering.v1.GetUsageSummaryRequest"]);
    // The caller's own tenant (no tenantId), so authorization passes and validation decides.
    const pattern = new RegExp(obj(obj(schema.properties).date).pattern as string);
    const date = "31/01/2025";
    expect(pattern.test(date), "the document says this date is invalid").toBe(false);
    const res = await call(path, { period: "PERIOD_DAY", date });
    expect(res.status).toBe(400);
    const body = obj(await res.json());
    expect(check(responseSchemaPointer(path, "400")!, body)).toBeUndefined();
    expect(body.code).toBe("invalid_argument");
    const types = (body.details as Obj[]).map((d) => d.type);
    expect(types).toEqual(expect.arrayContaining(["google.rpc.ErrorInfo", "google.rpc.BadRequest", "buf.validate.Violations"]));

    // The introduction says unknown fields are refused: a misspelt name answers 400, naming it,
    // in the documented error shape; the proto's own snake_case names are accepted.
    expect(String(obj(served.info).description)).toContain("Unknown fields are refused");
    const typo = await call(path, { period: "PERIOD_DAY", tenantID: "a".repeat(500) });
    expect(typo.status).toBe(400);
    const typoBody = obj(await typo.json());
    expect(check(responseSchemaPointer(path, "400")!, typoBody)).toBeUndefined();
    expect(typoBody).toMatchObject({ code: "invalid_argument" });
    expect(String(typoBody.message)).toContain('key "tenantID" is unknown');
    const snake = await call(path, { period: "PERIOD_DAY", tenant_id: "" });
    expect(snake.status).toBe(200);
  });

  it("serves a streaming RPC in Connect envelopes, as its note says, not as plain JSON", async () => {
    const path = "/nexus.ingestion.v1.IngestionService/WatchDocument";
    const op = obj(obj(obj(served.paths)[path]).post);
    expect(op["x-connect-streaming"]).toBe("server-streaming");
    // Plain JSON is not how this procedure is spoken.
    const plainJson = await call(path, { documentId: "demo" });
    expect(plainJson.status).toBe(415);
    await plainJson.body?.cancel();
    const stream = await connectJsonStream(
      `${nexus.url}${path}`,
      { documentId: "demo" },
      { headers: { authorization: `Bearer ${ownerKey}` }, timeoutMs: 20_000 },
    );
    expect(stream.status).toBe(200);
    expect(stream.headers.get("content-type")).toBe("application/connect+json");
    expect(stream.end, "the stream ends with an end-of-stream envelope").toBeDefined();
    expect(check("/components/schemas/connect.EndStreamResponse", stream.end)).toBeUndefined();
    expect(stream.end?.error?.code).toBe("not_found");
    // Refusals arrive the same way: status 200, the error in the end-of-stream envelope.
    const refused = await connectJsonStream(`${nexus.url}${path}`, { documentId: "demo" }, { timeoutMs: 20_000 });
    expect(refused.status).toBe(200);
    expect(check("/components/schemas/connect.EndStreamResponse", refused.end)).toBeUndefined();
    expect(refused.end?.error?.code).toBe("unauthenticated");
  });
});
