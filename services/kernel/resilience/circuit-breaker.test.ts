import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { RetryInfoSchema } from "../../../gen/google/rpc/error_details_pb.js";
import { errorReason } from "../errors.js";
import { CircuitBreaker, type CircuitState } from "./circuit-breaker.js";

function breaker(threshold = 3, resetMs = 1000, countsAsFailure?: (error: unknown) => boolean) {
  let now = 0;
  const changes: CircuitState[] = [];
  const b = new CircuitBreaker({
    dependency: "model:test",
    failureThreshold: threshold,
    resetTimeoutMs: resetMs,
    now: () => now,
    onStateChange: (s) => changes.push(s),
    ...(countsAsFailure ? { countsAsFailure } : {}),
  });
  return { b, changes, advance: (ms: number) => (now += ms) };
}

function refusal(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConnectError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}

describe("circuit breaker", () => {
  it("opens after N consecutive failures and fails fast with UNAVAILABLE and RetryInfo", () => {
    const { b, changes } = breaker(3, 1000);
    for (let i = 0; i < 3; i++) b.acquire().fail();
    expect(b.state).toBe("open");
    expect(changes).toEqual(["open"]);
    const err = refusal(() => b.acquire());
    expect(err.code).toBe(Code.Unavailable);
    expect(errorReason(err)).toBe("DEPENDENCY_UNAVAILABLE");
    const retry = err.findDetails(RetryInfoSchema)[0];
    expect(Number(retry?.retryDelay?.seconds ?? 0n) * 1000 + (retry?.retryDelay?.nanos ?? 0) / 1e6).toBe(1000);
  });

  it("a success resets the failure count", () => {
    const { b } = breaker(3);
    b.acquire().fail();
    b.acquire().fail();
    b.acquire().succeed();
    b.acquire().fail();
    b.acquire().fail();
    expect(b.state).toBe("closed");
  });

  it("neutral outcomes (client cancelled) count neither way", () => {
    const { b } = breaker(2);
    b.acquire().fail();
    b.acquire().release();
    expect(b.state).toBe("closed");
    expect(b.consecutiveFailures).toBe(1);
  });

  it("lets exactly one probe through when half-open; its success closes the breaker", () => {
    const { b, advance, changes } = breaker(1, 500);
    b.acquire().fail();
    advance(500);
    expect(b.state).toBe("half_open");
    const probe = b.acquire();
    expect(() => b.acquire()).toThrow(ConnectError);
    probe.succeed();
    expect(b.state).toBe("closed");
    expect(changes).toEqual(["open", "half_open", "closed"]);
    b.acquire().succeed();
  });

  it("a failed probe opens the breaker again for a full reset period", () => {
    const { b, advance } = breaker(1, 500);
    b.acquire().fail();
    advance(600);
    b.acquire().fail();
    expect(b.state).toBe("open");
    advance(499);
    expect(b.state).toBe("open");
    advance(1);
    expect(b.state).toBe("half_open");
  });

  it("settling a permit twice has no further effect", () => {
    const { b } = breaker(2);
    const p = b.acquire();
    p.fail();
    p.fail();
    p.release();
    expect(b.consecutiveFailures).toBe(1);
  });

  it("counts only the failures its predicate says are the dependency's (client-caused errors do not)", () => {
    const clientError = new ConnectError("bad", Code.InvalidArgument);
    const { b } = breaker(2, 1000, (err) => !(err instanceof ConnectError && err.code === Code.InvalidArgument));
    b.acquire().failed(clientError);
    b.acquire().failed(clientError);
    b.acquire().failed(clientError);
    expect(b.state).toBe("closed");
    expect(b.consecutiveFailures).toBe(0);
    b.acquire().failed(new Error("connection reset"));
    b.acquire().failed(new ConnectError("down", Code.Unavailable));
    expect(b.state).toBe("open");
  });

  it("without a predicate every failure counts", () => {
    const { b } = breaker(1);
    b.acquire().failed(new ConnectError("bad", Code.InvalidArgument));
    expect(b.state).toBe("open");
  });

  it("execute settles the call by its outcome and refuses calls while open", async () => {
    const { b, advance } = breaker(2, 1000, (err) => err !== "client");
    await expect(b.execute(async () => 42)).resolves.toBe(42);
    await expect(b.execute(() => Promise.reject("client"))).rejects.toBe("client");
    expect(b.consecutiveFailures).toBe(0);
    for (let i = 0; i < 2; i++) await expect(b.execute(() => Promise.reject(new Error("down")))).rejects.toThrow("down");
    expect(b.state).toBe("open");
    expect(b.retryInMs()).toBe(1000);
    advance(400);
    expect(b.retryInMs()).toBe(600);
    let called = false;
    const err = await b.execute(async () => (called = true)).catch((e: unknown) => e);
    expect(called).toBe(false);
    expect(errorReason(err)).toBe("DEPENDENCY_UNAVAILABLE");
    advance(600);
    expect(b.retryInMs()).toBe(0);
    await expect(b.execute(async () => "probe")).resolves.toBe("probe");
    expect(b.state).toBe("closed");
  });
});

describe("circuit breaker open period", () => {
  it("starts short and doubles while probes fail, up to resetTimeoutMs; a success starts over", () => {
    let now = 0;
    const b = new CircuitBreaker({
      dependency: "retrieval",
      failureThreshold: 1,
      resetTimeoutMs: 8_000,
      minResetTimeoutMs: 1_000,
      now: () => now,
    });
    b.acquire().fail();
    expect(b.retryInMs()).toBe(1_000);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      now += b.retryInMs();
      b.acquire().fail(); // the probe fails: open again, for longer
      waits.push(b.retryInMs());
    }
    expect(waits).toEqual([2_000, 4_000, 8_000, 8_000, 8_000]);
    now += b.retryInMs();
    b.acquire().succeed();
    expect(b.state).toBe("closed");
    b.acquire().fail();
    expect(b.retryInMs()).toBe(1_000);
  });
});
