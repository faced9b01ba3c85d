/**
 * Fuzz suite: every RPC of every service, enumerated from the generated descriptors, called
 * with inputs generated from its request descriptor — NULs, lone surrogates and invalid UTF-8,
 * oversize strings and bytes, extreme integers, NaN, timestamps in year 10000 and nanos of 2e9,
 * unknown enum numbers, Structs nested 200 deep, wrong JSON types, garbage binary — over gRPC
 * (binary, HTTP/2) and Connect JSON (HTTP/1.1), as raw bytes below any client library.
 *
 * Every answer must be a status the client caused or may retry — never INTERNAL, UNKNOWN or
 * DATA_LOSS, never a reset stream — and the server must be alive afterwards. Inputs come from a
 * seeded generator: a failure names its seed and case, and `NEXUS_FUZZ_SEED=<seed>` replays it.
 */
import http2 from "node:http2";
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { NEXUS_SERVICES } from "../services/kernel/authz/all-services.js";
import { PERMISSIONS, procedureOf } from "../services/kernel/authz/permissions.js";
import { TENANT_ID_FIELD } from "../services/kernel/authz/request-tenant.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import {
  deepJson,
  encodeBinary,
  encodeJson,
  generateInit,
  type Rng,
  randomBytes,
  seededRandom,
  withInvalidUtf8,
  wrongJsonType,
} from "./support/fuzz-inputs.js";
import { connectRaw, GRPC_CODE_NAMES, grpcFrame, grpcRaw, type RawOutcome } from "./support/raw-rpc.js";
import { describeWithPostgres } from "./support/services.js";

const SEED = Number(process.env.NEXUS_FUZZ_SEED ?? 20261206);
/** Random messages per RPC (each sent over gRPC and, for unary RPCs, Connect JSON); plus one per field. */
const CASES_PER_RPC = Number(process.env.NEXUS_FUZZ_CASES ?? 6);

/**
 * Server-streaming RPCs that never end by themselves (live feeds): called with a 1 s deadline,
 * so an accepted input costs a second, not the default ten. DEADLINE_EXCEEDED is no fault.
 */
const LIVE_FEEDS = new Set(["/nexus.eventstore.v1.EventStoreService/WatchEvents"]);

/** Codes that mean "the server failed", never acceptable for any input. */
const SERVER_FAULTS = new Set([2, 13, 15]);

const rpcs = NEXUS_SERVICES.flatMap((service) =>
  service.methods.map((method) => ({ service, method, procedure: procedureOf(service.typeName, method.name) })),
);

interface Failure {
  procedure: string;
  protocol: string;
  input: string;
  outcome: string;
}

function describeOutcome(o: RawOutcome): string {
  if (o.rstCode !== undefined) return `RST_STREAM ${o.rstCode}`;
  if (o.code === undefined) return `no status (HTTP ${o.httpStatus}) ${o.message}`.slice(0, 300);
  return `${GRPC_CODE_NAMES[o.code] ?? o.code} ${o.message}`.slice(0, 300);
}

/** Failures grouped by procedure and outcome, one line each, so a report stays readable. */
function summary(failures: readonly Failure[]): string[] {
  const groups = new Map<string, string[]>();
  for (const f of failures) {
    const key = `${f.procedure} [${f.protocol}] → ${f.outcome.slice(0, 160)}`;
    groups.set(key, [...(groups.get(key) ?? []), f.input]);
  }
  return [...groups].map(
    ([key, inputs]) => `${key}  (${inputs.slice(0, 3).join("; ")}${inputs.length > 3 ? `; +${inputs.length - 3}` : ""})`,
  );
}

function isFault(o: RawOutcome): boolean {
  return o.code === undefined || SERVER_FAULTS.has(o.code);
}

describeWithPostgres("fuzz: every RPC with hostile inputs from its descriptor", () => {
  let mesh: AgentMesh;
  let session: http2.ClientHttp2Session;
  let tenantId: string;
  /** Owner key of an enterprise tenant (every feature, so no RPC stops at FEATURE_NOT_ENABLED). */
  let ownerKey: string;
  /** The tenant platform-only RPCs (SetPlan, SuspendTenant…) fuzz, so the owner's tenant keeps its plan. */
  let platformTarget: string;

  beforeAll(async () => {
    mesh = await startAgentMesh({ LOG_LEVEL: "error" });
    ({ tenantId, key: ownerKey } = await mesh.newTenant("enterprise", "owner"));
    ({ tenantId: platformTarget } = await mesh.newTenant("free", "viewer"));
    session = connect();
    session.on("error", () => {});
  }, 90_000);

  afterAll(async () => {
    session?.close();
    await mesh?.close();
  });

  const keyFor = (procedure: string) => (PERMISSIONS[procedure]?.class === "platform" ? mesh.platformKey : ownerKey);
  // Room for the 5 MiB bodies of the oversize case (Node's default session memory is 10 MB).
  const connect = () => http2.connect(mesh.url, { maxSessionMemory: 64 }).on("error", () => {});
  const auth = (procedure: string) => ({ authorization: `Bearer ${keyFor(procedure)}` });

  /** A live HTTP/2 session; a new one when the last was closed (so one failure does not hide the rest). */
  const live = () => {
    if (session.closed || session.destroyed) session = connect();
    return session;
  };

  async function grpc(procedure: string, payload: Uint8Array, framed = true): Promise<RawOutcome> {
    const deadline: Record<string, string> = LIVE_FEEDS.has(procedure) ? { "grpc-timeout": "1S" } : {};
    return grpcRaw(live(), procedure, payload, { ...auth(procedure), ...deadline }, { frame: framed });
  }

  it("generated messages: a client error (or success), never INTERNAL, over gRPC and Connect JSON", async () => {
    const failures: Failure[] = [];
    let calls = 0;
    for (const [index, { method, procedure }] of rpcs.entries()) {
      const rng = seededRandom(SEED + index * 7919);
      const hasTenant = method.input.fields.some((f) => f.name === TENANT_ID_FIELD);
      // Random cases (many hostile fields), then two per field with only that field hostile:
      // its most damaging value (NUL, 2^64−1, year 10000…), then a random hostile one.
      const targets = method.input.fields.flatMap((f) => [
        { name: f.name, primary: true },
        { name: f.name, primary: false },
      ]);
      for (let c = 0; c < CASES_PER_RPC + targets.length; c++) {
        const target = PERMISSIONS[procedure]?.class === "platform" ? platformTarget : tenantId;
        const targeted = c >= CASES_PER_RPC ? targets[c - CASES_PER_RPC] : undefined;
        const init = generateInit(method.input, rng, {
          hostileRate: c % 3 === 0 ? 0.15 : 0.4,
          fixed: hasTenant ? { tenant_id: target } : {},
          ...(targeted !== undefined ? { hostileField: targeted.name, primary: targeted.primary } : {}),
        });
        const input = `seed ${SEED} case ${c}${targeted ? ` (${targeted.name}${targeted.primary ? ", primary" : ""})` : ""}`;
        const binary = encodeBinary(method.input, init);
        if (binary) {
          const o = await grpc(procedure, binary);
          calls++;
          if (isFault(o)) failures.push({ procedure, protocol: "grpc", input, outcome: describeOutcome(o) });
        }
        if (method.methodKind !== "unary") continue;
        const json = encodeJson(method.input, init);
        if (json) {
          const o = await connectRaw(mesh.url, procedure, json, auth(procedure));
          calls++;
          if (isFault(o)) failures.push({ procedure, protocol: "connect-json", input, outcome: describeOutcome(o) });
        }
      }
    }
    expect(calls).toBeGreaterThan(rpcs.length * CASES_PER_RPC);
    expect(summary(failures)).toEqual([]);
  }, 120_000);

  it("undecodable bodies (wrong JSON types, deep nesting, invalid UTF-8, garbage binary): INVALID_ARGUMENT with ErrorInfo", async () => {
    const failures: Failure[] = [];
    const expectInvalid = (procedure: string, protocol: string, input: string, o: RawOutcome, allowOk = false) => {
      const ok = allowOk && o.code === 0;
      // INVALID_ARGUMENT with details, or refused earlier for the same reason (size).
      const refused = (o.code === 3 && o.hasDetails) || o.code === 8;
      if (!ok && !refused)
        failures.push({ procedure, protocol, input, outcome: `${describeOutcome(o)}${o.hasDetails ? "" : " (no details)"}` });
    };
    for (const [index, { method, procedure }] of rpcs.entries()) {
      const rng: Rng = seededRandom(SEED + 1 + index * 104729);
      // Garbage binary: random bytes as a gRPC message and as a Connect binary body.
      for (let c = 0; c < 4; c++) {
        const bytes = randomBytes(rng, 1 + rng.int(200));
        // Random bytes sometimes decode (unknown fields): then only "no server fault" applies.
        const decodes = (() => {
          try {
            fromBinary(method.input, bytes);
            return true;
          } catch {
            return false;
          }
        })();
        const check = (protocol: string, o: RawOutcome) => {
          if (!decodes) expectInvalid(procedure, protocol, `garbage ${c}`, o);
          else if (isFault(o)) failures.push({ procedure, protocol, input: `garbage ${c} (decodable)`, outcome: describeOutcome(o) });
        };
        check("grpc", await grpc(procedure, bytes));
        if (method.methodKind === "unary")
          check("connect-proto", await connectRaw(mesh.url, procedure, bytes, auth(procedure), "application/proto"));
      }
      // A truncated frame (length prefix larger than the body).
      const truncated = grpcFrame(Uint8Array.of(0x0a, 0x05, 0x61));
      truncated.writeUInt32BE(50, 1);
      expectInvalid(procedure, "grpc", "truncated frame", await grpc(procedure, truncated, false));
      // Invalid UTF-8 in each string field (protobuf-es replaces it; either way no server fault).
      for (const field of method.input.fields.filter((f) => f.fieldKind === "scalar" && f.scalar === 9).slice(0, 3)) {
        const o = await grpc(procedure, withInvalidUtf8(new Uint8Array(), field));
        if (isFault(o))
          failures.push({ procedure, protocol: "grpc", input: `invalid UTF-8 in ${field.name}`, outcome: describeOutcome(o) });
      }
      if (method.methodKind !== "unary") continue;
      // Wrong JSON types, one field at a time.
      for (const field of method.input.fields.slice(0, 6)) {
        const body = JSON.stringify({ [field.jsonName]: wrongJsonType(field, rng) });
        const o = await connectRaw(mesh.url, procedure, body, auth(procedure));
        // A wrong type that protobuf JSON still accepts ("-1" for an int) may decode and then fail validation.
        if (o.code !== 3 || !o.hasDetails) {
          if (isFault(o) || o.code === 0) {
            if (o.code !== 0)
              failures.push({
                procedure,
                protocol: "connect-json",
                input: `wrong type for ${field.name}: ${body.slice(0, 80)}`,
                outcome: describeOutcome(o),
              });
          }
        }
      }
      // Timestamps JSON cannot hold (year 10000, nanos beyond 9 digits) in each Timestamp field.
      for (const field of method.input.fields.filter(
        (f) => f.fieldKind === "message" && f.message.typeName === "google.protobuf.Timestamp",
      )) {
        for (const value of ["10000-01-01T00:00:00Z", "2030-01-01T00:00:00.9999999999Z", "0000-12-31T00:00:00Z"]) {
          expectInvalid(
            procedure,
            "connect-json",
            `${field.name} = ${value}`,
            await connectRaw(mesh.url, procedure, JSON.stringify({ [field.jsonName]: value }), auth(procedure)),
          );
        }
      }
      // Not JSON at all, and JSON nested 100 000 deep.
      expectInvalid(procedure, "connect-json", "not JSON", await connectRaw(mesh.url, procedure, '{"a":', auth(procedure)));
      expectInvalid(procedure, "connect-json", "deep nesting", await connectRaw(mesh.url, procedure, deepJson(100_000), auth(procedure)));
    }
    expect(summary(failures)).toEqual([]);
  }, 120_000);

  it("an oversize request is RESOURCE_EXHAUSTED, not a reset stream, over gRPC", async () => {
    const procedure = "/nexus.retrieval.v1.RetrievalService/Search";
    const big = new Uint8Array(5 * 1024 * 1024).fill(0x61);
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) outcomes.push(describeOutcome(await grpc(procedure, big)));
    for (const o of outcomes) expect(o).toMatch(/^RESOURCE_EXHAUSTED/);
    // The same connection still serves.
    expect(describeOutcome(await grpc("/nexus.auth.v1.AuthService/WhoAmI", new Uint8Array()))).toBe("OK ");
  }, 60_000);

  it("the cases an outside client reported: refused with INVALID_ARGUMENT naming the field, and what is stored reads back exactly", async () => {
    const platform = mesh.client(mesh.platformKey, { protocol: "grpc" });
    const owner = mesh.client(ownerKey, { protocol: "grpc" });
    const refusal = async (call: () => Promise<unknown>) => {
      try {
        await call();
      } catch (err) {
        const ce = ConnectError.from(err);
        return `${Code[ce.code]} ${errorReason(ce)} ${errorMetadata(ce).fields}`;
      }
      return "OK";
    };
    const allowance = (n: bigint) => () =>
      platform.auth.setEntitlementOverrides({ tenantId: platformTarget, overrides: { monthlyRunAllowance: n } });
    expect(await refusal(allowance(2n ** 53n + 1n))).toBe("InvalidArgument VALIDATION_FAILED overrides.monthly_run_allowance");
    expect(await refusal(allowance(2n ** 64n - 1n))).toBe("InvalidArgument VALIDATION_FAILED overrides.monthly_run_allowance");
    expect(await refusal(allowance(2n ** 53n - 1n))).toBe("OK");
    const { tenant } = await platform.auth.getTenant({ selector: { case: "tenantId", value: platformTarget } });
    expect(tenant?.entitlementOverrides?.monthlyRunAllowance).toBe(2n ** 53n - 1n);
    expect(tenant?.entitlements?.monthlyRunAllowance).toBe(2n ** 53n - 1n);
    expect(await refusal(() => platform.auth.listTenants({}))).toBe("OK");
    expect(await refusal(() => platform.auth.updateTenant({ tenantId: platformTarget, displayName: "nul\0name" }))).toBe(
      "InvalidArgument VALIDATION_FAILED display_name",
    );
    expect(await refusal(() => owner.retrieval.search({ corpusId: "kb", query: "what\0now" }))).toBe(
      "InvalidArgument VALIDATION_FAILED query",
    );
    expect(await refusal(() => owner.ingestion.ingestText({ corpusId: "kb", text: "t", metadata: { title: "a\0b" } }))).toMatch(
      /^InvalidArgument VALIDATION_FAILED metadata/,
    );
    expect(
      await refusal(() => owner.auth.createApiKey({ name: "k", role: Role.VIEWER, expiresAt: { seconds: 253_402_300_800n, nanos: 0 } })),
    ).toBe("InvalidArgument VALIDATION_FAILED expires_at");
    expect(
      await refusal(() =>
        owner.auth.createApiKey({ name: "k", role: Role.VIEWER, expiresAt: { seconds: 4_000_000_000n, nanos: 2_000_000_000 } }),
      ),
    ).toBe("InvalidArgument VALIDATION_FAILED expires_at");
    expect(
      await refusal(async () => {
        for await (const _ of owner.agent.run({ corpusId: "kb", message: "hello\0" })) break;
      }),
    ).toBe("InvalidArgument VALIDATION_FAILED message");
    expect(await refusal(() => owner.auth.whoAmI({}))).toBe("OK");
  });

  it("the server is alive and answers afterwards", async () => {
    expect(mesh.process.child.exitCode).toBeNull();
    const me = await mesh.client(ownerKey).auth.whoAmI({});
    expect(me.principal?.tenantId).toBe(tenantId);
    expect(mesh.process.output()).not.toMatch(/uncaught|unhandled/i);
  });
});
