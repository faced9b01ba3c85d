import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { domainError } from "../../kernel/errors.js";
import { countsAgainstBreaker, isDependencyFailure } from "./run-errors.js";

describe("isDependencyFailure (fall back, fail open or retry)", () => {
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

describe("countsAgainstBreaker (what a circuit breaker counts)", () => {
  it("counts outages, timeouts and transport resets", () => {
    for (const code of [Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Canceled, Code.DataLoss, Code.Unimplemented]) {
      expect(countsAgainstBreaker(new ConnectError("down", code))).toBe(true);
    }
    expect(countsAgainstBreaker(new ConnectError("stream reset", Code.Aborted))).toBe(true);
    expect(countsAgainstBreaker(new Error("socket hang up"))).toBe(true);
  });

  it("never counts what one request may have caused, so one tenant cannot open a breaker for all", () => {
    for (const code of [
      Code.InvalidArgument,
      Code.NotFound,
      Code.PermissionDenied,
      Code.Unauthenticated,
      Code.FailedPrecondition,
      Code.OutOfRange,
      Code.AlreadyExists,
      Code.ResourceExhausted,
      // A dependency failing on one request's input (e.g. a NUL in a query) answers INTERNAL.
      Code.Internal,
    ]) {
      expect(countsAgainstBreaker(new ConnectError("the request's fault", code))).toBe(false);
    }
    expect(countsAgainstBreaker(domainError("CONCURRENCY_CONFLICT", "changed concurrently", {}))).toBe(false);
  });
});
