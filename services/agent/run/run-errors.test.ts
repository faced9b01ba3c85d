import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { domainError } from "../../kernel/errors.js";
import { isDependencyFailure } from "./run-errors.js";

describe("isDependencyFailure (what counts against a circuit breaker)", () => {
  it("counts outages, timeouts and transport resets", () => {
    for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.Internal, Code.Unknown, Code.Canceled]) {
      expect(isDependencyFailure(new ConnectError("down", code))).toBe(true);
    }
    // connect-node turns ECONNRESET / a destroyed HTTP/2 stream into a bare ABORTED.
    expect(isDependencyFailure(new ConnectError("stream reset", Code.Aborted))).toBe(true);
    expect(isDependencyFailure(new Error("socket hang up"))).toBe(true);
  });

  it("does not count refusals of the request itself, nor an ABORTED the dependency meant", () => {
    expect(isDependencyFailure(new ConnectError("no such corpus", Code.NotFound))).toBe(false);
    expect(isDependencyFailure(new ConnectError("bad", Code.InvalidArgument))).toBe(false);
    expect(isDependencyFailure(domainError("CONCURRENCY_CONFLICT", "changed concurrently", {}))).toBe(false);
  });
});
