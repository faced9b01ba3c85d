import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { errorReason } from "../kernel/errors.js";
import { decodeSessionToken, encodeSessionToken } from "./session-page-token.js";

describe("session page tokens", () => {
  it("round-trip a position for the same filter", () => {
    const cursor = { updatedAt: new Date("2026-01-01T12:00:00.123Z"), sessionId: "ses_1" };
    expect(decodeSessionToken(encodeSessionToken(cursor, "kb"), "kb")).toEqual(cursor);
    expect(decodeSessionToken("", "kb")).toBeUndefined();
  });

  it("refuse foreign or reused tokens with INVALID_ARGUMENT INVALID_CURSOR", () => {
    const token = encodeSessionToken({ updatedAt: new Date(0), sessionId: "s" }, "kb");
    for (const [t, filter] of [["garbage", "kb"], [token, "other"], [Buffer.from('{"u":"x"}').toString("base64url"), "kb"]] as const) {
      let err: unknown;
      try {
        decodeSessionToken(t, filter);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConnectError);
      expect((err as ConnectError).code).toBe(Code.InvalidArgument);
      expect(errorReason(err)).toBe("INVALID_CURSOR");
    }
  });
});
