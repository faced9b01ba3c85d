import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema, RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { domainError } from "../errors.js";
import { normalizeError } from "./error-normalizing.js";

const live = new AbortController().signal;

describe("normalizeError", () => {
  it("answers a database outage UNAVAILABLE with RetryInfo, not INTERNAL", () => {
    const cause = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const err = normalizeError(cause, live, "req-1");
    expect(err.code).toBe(Code.Unavailable);
    expect(err.findDetails(ErrorInfoSchema)[0]).toMatchObject({ reason: "DEPENDENCY_UNAVAILABLE", metadata: { dependency: "database" } });
    expect(err.findDetails(RetryInfoSchema)[0]?.retryDelay?.seconds).toBe(1n);
    expect(err.rawMessage).not.toContain("5432"); // the cause is logged, never sent
  });

  it("also fixes an INTERNAL some code built around a database outage", () => {
    const wrapped = domainError("INTERNAL", "internal error", {}, { cause: new Error("Connection terminated unexpectedly") });
    expect(normalizeError(wrapped, live).code).toBe(Code.Unavailable);
  });

  it("keeps everything else as it was", () => {
    expect(normalizeError(new Error("boom"), live).code).toBe(Code.Internal);
    expect(normalizeError(Object.assign(new Error("dup"), { code: "23505" }), live).code).toBe(Code.Internal);
    const notFound = new ConnectError("nope", Code.NotFound);
    expect(normalizeError(notFound, live)).toBe(notFound);
  });
});
