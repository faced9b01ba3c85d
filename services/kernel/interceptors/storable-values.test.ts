import { create } from "@bufbuild/protobuf";
import { createValidator } from "@bufbuild/protovalidate";
import { ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { BadRequestSchema } from "../../../gen/google/rpc/error_details_pb.js";
import {
  CreateApiKeyRequestSchema,
  RotateApiKeyRequestSchema,
  SetEntitlementOverridesRequestSchema,
  UpdateTenantRequestSchema,
} from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { IngestTextRequestSchema } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { SearchRequestSchema } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { errorMetadata, errorReason } from "../errors.js";
import { storableValueViolations } from "./storable-values.js";
import { assertValid, violationField } from "./validation.js";

const TENANT = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";

/** The fields and rule ids violations name. */
function fields(v: ReturnType<typeof storableValueViolations>): string[] {
  return v.map((x) => `${violationField(x)} ${x.ruleId}`);
}

describe("values every request must be able to store and read back", () => {
  it("refuses NUL in any string: plain fields, nested messages, Struct values and keys", () => {
    const ingest = create(IngestTextRequestSchema, {
      corpusId: "c1",
      text: "hello\0world",
      metadata: { title: "a\0b", nested: { list: ["ok", "x\0"] }, "k\0": 1 },
    });
    expect(fields(storableValueViolations(IngestTextRequestSchema, ingest)).sort()).toEqual(
      [
        "text string.no_nul",
        'metadata.fields["title"].string_value string.no_nul',
        'metadata.fields["nested"].struct_value.fields["list"].list_value.values[1].string_value string.no_nul',
        'metadata.fields["k\0"] string.no_nul',
      ].sort(),
    );
    expect(
      storableValueViolations(
        IngestTextRequestSchema,
        create(IngestTextRequestSchema, { corpusId: "c1", text: "fine", metadata: { a: "b" } }),
      ),
    ).toEqual([]);
  });

  it("refuses 64-bit integers a JavaScript number cannot hold exactly (2^53+1, 2^64−1) and accepts 2^53−1", () => {
    const overrides = (n: bigint) =>
      create(SetEntitlementOverridesRequestSchema, { tenantId: TENANT, overrides: { monthlyRunAllowance: n } });
    expect(fields(storableValueViolations(SetEntitlementOverridesRequestSchema, overrides(2n ** 53n + 1n)))).toEqual([
      "overrides.monthly_run_allowance int64.exact",
    ]);
    expect(fields(storableValueViolations(SetEntitlementOverridesRequestSchema, overrides(2n ** 64n - 1n)))).toEqual([
      "overrides.monthly_run_allowance int64.exact",
    ]);
    expect(storableValueViolations(SetEntitlementOverridesRequestSchema, overrides(2n ** 53n - 1n))).toEqual([]);
  });

  it("refuses timestamps outside years 1–9999 or with nanos outside 0–999,999,999, and malformed durations", () => {
    const key = (seconds: bigint, nanos: number) =>
      create(CreateApiKeyRequestSchema, { tenantId: TENANT, name: "k", expiresAt: { seconds, nanos } });
    expect(fields(storableValueViolations(CreateApiKeyRequestSchema, key(253_402_300_800n, 0)))).toEqual(["expires_at timestamp.valid"]);
    expect(fields(storableValueViolations(CreateApiKeyRequestSchema, key(1_900_000_000n, 2_000_000_000)))).toEqual([
      "expires_at timestamp.valid",
    ]);
    expect(storableValueViolations(CreateApiKeyRequestSchema, key(253_402_300_799n, 999_999_999))).toEqual([]);
    const rotate = (seconds: bigint, nanos: number) => create(RotateApiKeyRequestSchema, { keyId: "k", gracePeriod: { seconds, nanos } });
    expect(fields(storableValueViolations(RotateApiKeyRequestSchema, rotate(60n, -1)))).toEqual(["grace_period duration.valid"]);
    expect(fields(storableValueViolations(RotateApiKeyRequestSchema, rotate(315_576_000_001n, 0)))).toEqual([
      "grace_period duration.valid",
    ]);
    expect(storableValueViolations(RotateApiKeyRequestSchema, rotate(60n, 5))).toEqual([]);
  });

  it("refuses NaN and infinities inside a Struct (they have no JSON form)", () => {
    const update = create(UpdateTenantRequestSchema, { tenantId: TENANT, displayName: "x" });
    expect(storableValueViolations(UpdateTenantRequestSchema, update)).toEqual([]);
    const search = create(SearchRequestSchema, { corpusId: "c1", query: "q", filter: { metadataEquals: { score: Number.NaN } } });
    expect(fields(storableValueViolations(SearchRequestSchema, search))).toEqual([
      'filter.metadata_equals.fields["score"].number_value value.finite',
    ]);
  });

  it("refuses Structs nested beyond 64 message levels instead of walking them", () => {
    const nested = (depth: number) => {
      let v: Record<string, unknown> = { leaf: "x" };
      for (let i = 0; i < depth; i++) v = { n: v };
      return create(IngestTextRequestSchema, { corpusId: "c1", text: "t", metadata: v as never });
    };
    expect(storableValueViolations(IngestTextRequestSchema, nested(10))).toEqual([]);
    expect(storableValueViolations(IngestTextRequestSchema, nested(500)).map((v) => v.ruleId)).toEqual(["message.depth"]);
  });

  it("is part of validation: INVALID_ARGUMENT VALIDATION_FAILED naming the field, with a BadRequest field violation", () => {
    const search = create(SearchRequestSchema, { corpusId: "c1", query: "what\0now" });
    let err: unknown;
    try {
      assertValid(createValidator(), SearchRequestSchema, search);
    } catch (e) {
      err = e;
    }
    const ce = ConnectError.from(err);
    expect(errorReason(ce)).toBe("VALIDATION_FAILED");
    expect(errorMetadata(ce).fields).toBe("query");
    expect(ce.rawMessage).toContain("query: must not contain NUL characters");
    const bad = ce.findDetails(BadRequestSchema)[0];
    expect(bad?.fieldViolations.map((f) => [f.field, f.reason])).toEqual([["query", "string.no_nul"]]);
  });
});
