import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorMetadata, errorReason } from "../errors.js";
import { counterPosition, keysetPosition, pageTokens, sequencePosition } from "./page-token.js";

function refusal(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

function expectInvalidCursor(fn: () => unknown): ConnectError {
  const err = refusal(fn);
  expect(err.code).toBe(Code.InvalidArgument);
  expect(errorReason(err)).toBe("INVALID_CURSOR");
  expect(errorMetadata(err)).toEqual({ field: "page_token" });
  return err;
}

const raw = (json: unknown) => Buffer.from(JSON.stringify(json)).toString("base64url");

describe("page tokens", () => {
  const sessions = pageTokens(keysetPosition("updatedAt", "sessionId"));
  const keys = pageTokens(keysetPosition("createdAt", "id"));
  const documents = pageTokens(sequencePosition);
  const audit = pageTokens(counterPosition);

  it("round-trip each kind of position for the same query; an empty token is the first page", () => {
    const cursor = { updatedAt: new Date("2026-01-01T12:00:00.123Z"), sessionId: "ses_1" };
    expect(sessions.decode(sessions.encode(cursor, "kb"), "kb")).toEqual(cursor);
    expect(sessions.decode("", "kb")).toBeUndefined();
    const filters = { tenantId: "t1", platform: false, statuses: ["active", "revoked"] };
    const key = { createdAt: new Date("2025-06-30T23:59:59.999Z"), id: "key_9" };
    expect(keys.decode(keys.encode(key, filters), { ...filters })).toEqual(key);
    expect(documents.decode(documents.encode(9_007_199_254_740_993n, "documents||"), "documents||")).toBe(9_007_199_254_740_993n);
    expect(audit.decode(audit.encode(42, "chain|t1"), "chain|t1")).toBe(42);
  });

  it("are opaque URL-safe strings", () => {
    expect(documents.encode(7n, { tenantId: "t1" })).toMatch(/^[A-Za-z0-9_-]+$/);
  });

  it("refuse a token reused with another query (filter, tenant, corpus) with INVALID_CURSOR", () => {
    const err = expectInvalidCursor(() => sessions.decode(sessions.encode({ updatedAt: new Date(0), sessionId: "s" }, "kb"), "other"));
    expect(err.rawMessage).toMatch(/other filters/);
    expectInvalidCursor(() => keys.decode(keys.encode({ createdAt: new Date(0), id: "k" }, { tenantId: "t1" }), { tenantId: "t2" }));
    expectInvalidCursor(() => audit.decode(audit.encode(3, "chain|t1|a"), "chain|t1|b"));
  });

  it("refuse garbage, altered and foreign tokens with INVALID_CURSOR, never another code", () => {
    const good = JSON.parse(Buffer.from(documents.encode(5n, "q"), "base64url").toString("utf8")) as { v: number; p: string; q: string };
    for (const token of [
      "garbage",
      "not-a-token!",
      raw(null),
      raw([1, 2]),
      raw({ u: "x" }),
      raw({ ...good, v: 2 }),
      raw({ ...good, p: "-1" }),
      raw({ ...good, p: "12a" }),
      raw({ ...good, p: "1".repeat(20) }),
      raw({ ...good, q: 7 }),
      raw({ v: 1, p: "5" }),
    ]) {
      const err = expectInvalidCursor(() => documents.decode(token, "q"));
      expect(err.rawMessage).toMatch(/not a token this API issued/);
    }
    for (const p of [-1, 1.5, "3", Number.MAX_SAFE_INTEGER + 1]) expectInvalidCursor(() => audit.decode(raw({ v: 1, p, q: good.q }), "q"));
    for (const p of [[Number.NaN, "s"], ["x", "s"], [0], [0, 1], [8.64e15 + 1, "s"]]) {
      expectInvalidCursor(() => sessions.decode(raw({ v: 1, p, q: good.q }), "q"));
    }
  });

  it("a token of one list API does not decode as another's position", () => {
    expectInvalidCursor(() => documents.decode(sessions.encode({ updatedAt: new Date(0), sessionId: "s" }, "q"), "q"));
    expectInvalidCursor(() => sessions.decode(audit.encode(1, "q"), "q"));
  });
});
