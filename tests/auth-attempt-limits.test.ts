import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { invalidateInProcess } from "../services/kernel/authz/authentication-cache.js";
import { errorMetadata, errorReason } from "../services/kernel/errors.js";
import { type AuthHarness, startAuthHarness } from "./support/auth-harness.js";
import { describeWithPostgres } from "./support/services.js";

// The refused-authentication limiter through a real Nexus on PostgreSQL, over real
// connections: gRPC (HTTP/2), Connect JSON (HTTP/1.1) and the console session cookie. Each test
// is its own client address: the server trusts 127.0.0.1 as a proxy (NEXUS_TRUSTED_PROXIES),
// so X-Forwarded-For names the client.

const BURST = 5;
// Slow enough that no token comes back while a test makes its calls on a loaded machine (the refill test waits for one).
const RATE = 0.2;
/** The secret part of a key that fits the shape but is nobody's. */
const WRONG_SECRET = "A".repeat(43);

async function refusalOf(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to be refused");
}

function retryDelayMs(err: ConnectError): number {
  const d = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  return d ? Number(d.seconds) * 1000 + d.nanos / 1e6 : -1;
}

describeWithPostgres("refused-authentication limiter (per client address and claimed key id, before the key lookup)", () => {
  let h: AuthHarness;
  let tenantId: string;

  beforeAll(async () => {
    h = await startAuthHarness({
      env: {
        NEXUS_AUTH_ATTEMPT_BURST: String(BURST),
        NEXUS_AUTH_ATTEMPT_RATE_PER_SECOND: String(RATE),
        NEXUS_TRUSTED_PROXIES: "127.0.0.1,::1",
      },
    });
    tenantId = (await h.tenant()).tenant.id;
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });

  /** Authenticator lookups so far (cache misses of the gate: each one asked the auth domain, i.e. the database). */
  async function lookups(): Promise<number> {
    const text = await (await fetch(`${h.url}/metrics`)).text();
    const m = /^nexus_auth_cache_lookups_total\{outcome="miss"\} (\d+)/m.exec(text);
    return Number(m?.[1] ?? 0);
  }

  /** AccessDenied audit records so far, by reason. */
  async function denied(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const e of await h.events("AccessDenied")) {
      const reason = String((e.payload as { reason?: string }).reason ?? "?");
      out[reason] = (out[reason] ?? 0) + 1;
    }
    return out;
  }

  const whoAmI = (key: string, address: string) => h.client(key).auth.whoAmI({}, { headers: { "x-forwarded-for": address } });

  it("gRPC: after the burst of wrong secrets the next call is RESOURCE_EXHAUSTED AUTH_RATE_LIMITED, with no lookup and one audit record", async () => {
    const real = await h.key(tenantId, Role.VIEWER);
    const wrong = `nxs_${real.id}_${WRONG_SECRET}`;
    const address = "198.51.100.1";
    const lookupsBefore = await lookups();
    const deniedBefore = await denied();
    for (let i = 0; i < BURST; i++) {
      const err = await refusalOf(() => whoAmI(wrong, address));
      expect(err.code).toBe(Code.Unauthenticated);
    }
    const throttled: ConnectError[] = [];
    for (let i = 0; i < 30; i++) throttled.push(await refusalOf(() => whoAmI(wrong, address)));
    for (const err of throttled) {
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(errorReason(err)).toBe("AUTH_RATE_LIMITED");
    }
    const first = throttled[0]!;
    // Both of the call's buckets are dry; the address is named first.
    expect(errorMetadata(first)).toMatchObject({ scope: "client_address" });
    expect(first.rawMessage).toMatch(/too many refused authentication attempts from this address; check the API key and retry in \d+ s/);
    expect(retryDelayMs(first)).toBeGreaterThan(0);
    expect(retryDelayMs(first)).toBeLessThanOrEqual(1000 / RATE);
    expect(Number(first.metadata.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(first.metadata.get("x-ratelimit-scope")).toBe("client_address");

    // Only the burst reached the authenticator (and the database); the 30 throttled calls did not.
    expect((await lookups()) - lookupsBefore).toBe(BURST);
    const deniedAfter = await denied();
    expect((deniedAfter.AUTH_UNAUTHORIZED ?? 0) - (deniedBefore.AUTH_UNAUTHORIZED ?? 0)).toBe(BURST);
    // One record for the throttled period (the first of each dry bucket), not one per call.
    expect((deniedAfter.AUTH_RATE_LIMITED ?? 0) - (deniedBefore.AUTH_RATE_LIMITED ?? 0)).toBe(1);
    const metrics = await (await fetch(`${h.url}/metrics`)).text();
    expect(metrics).toMatch(/^nexus_auth_throttled_total\{scope="client_address"\} [1-9]\d*/m);
  });

  it("a key id sprayed from many addresses is throttled; its holder's key passes when it authenticated before, a new key waits", async () => {
    const real = await h.key(tenantId, Role.VIEWER);
    // The holder used the key before: this process knows it is good.
    await whoAmI(real.plaintext, "198.51.100.20");
    const wrong = `nxs_${real.id}_${WRONG_SECRET}`;
    for (let i = 0; i < BURST; i++) {
      expect((await refusalOf(() => whoAmI(wrong, `203.0.113.${i + 1}`))).code).toBe(Code.Unauthenticated);
    }
    const err = await refusalOf(() => whoAmI(wrong, "203.0.113.100"));
    expect(errorReason(err)).toBe("AUTH_RATE_LIMITED");
    expect(errorMetadata(err).scope).toBe("key_id");
    expect(err.rawMessage).toMatch(/with this key id/);

    // The holder's answer is cached: the limiter is not even asked.
    expect((await whoAmI(real.plaintext, "198.51.100.21")).apiKey?.id).toBe(real.id);
    // Not cached any more (as after the cache TTL): the credential succeeded before, so it is looked up.
    invalidateInProcess({ all: true });
    const lookupsBefore = await lookups();
    expect((await whoAmI(real.plaintext, "198.51.100.22")).apiKey?.id).toBe(real.id);
    expect((await lookups()) - lookupsBefore).toBe(1);

    // A good key never seen by this process, from an address that used up its refusals, waits
    // for the retry-after (its goodness cannot be known without the lookup), then works.
    const fresh = await h.key(tenantId, Role.VIEWER);
    const address = "198.51.100.30";
    for (let i = 0; i < BURST; i++) await refusalOf(() => whoAmI(`nxs_${fresh.id}x_${WRONG_SECRET}`, address));
    const waited = await refusalOf(() => whoAmI(fresh.plaintext, address));
    expect(errorReason(waited)).toBe("AUTH_RATE_LIMITED");
    await new Promise((r) => setTimeout(r, Number(waited.metadata.get("x-ratelimit-retry-after-ms")) + 50));
    expect((await whoAmI(fresh.plaintext, address)).apiKey?.id).toBe(fresh.id);
  });

  it("Connect JSON: HTTP 429 with retry-after, and the bucket refills after it", async () => {
    const call = (address: string) =>
      fetch(`${h.url}/nexus.auth.v1.AuthService/WhoAmI`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer nxs_${"0".repeat(24)}_${WRONG_SECRET}`,
          "x-forwarded-for": address,
        },
        body: "{}",
      });
    const address = "192.0.2.77";
    const statuses: number[] = [];
    for (let i = 0; i < BURST; i++) statuses.push((await call(address)).status);
    expect(statuses).toEqual(new Array(BURST).fill(401));
    const res = await call(address);
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe("resource_exhausted");
    expect(body.message).toMatch(/too many refused authentication attempts/);
    const waitMs = Number(res.headers.get("x-ratelimit-retry-after-ms"));
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(retryAfter * 1000);
    await new Promise((r) => setTimeout(r, waitMs + 50));
    // One attempt regained: it is looked up (and refused) again, then the bucket is dry again.
    expect((await call(address)).status).toBe(401);
    expect((await call(address)).status).toBe(429);
  });

  it("AuthService.Authenticate called directly (public) is limited the same way", async () => {
    const call = () =>
      fetch(`${h.url}/nexus.auth.v1.AuthService/Authenticate`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": "192.0.2.99" },
        body: JSON.stringify({ apiKey: `nxs_${"2".repeat(24)}_${WRONG_SECRET}` }),
      });
    const lookupsBefore = (await denied()).AUTH_UNAUTHORIZED ?? 0;
    for (let i = 0; i < BURST; i++) expect((await call()).status).toBe(401);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await call()).status);
    expect(statuses).toEqual(new Array(10).fill(429));
    // Only the burst was looked up and recorded.
    expect(((await denied()).AUTH_UNAUTHORIZED ?? 0) - lookupsBefore).toBe(BURST);
  });

  it("the console's sign-in form is limited the same way (429 with retry-after)", async () => {
    const signIn = () =>
      fetch(`${h.url}/auth/session`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": "192.0.2.111" },
        body: JSON.stringify({ apiKey: `nxs_${"3".repeat(24)}_${WRONG_SECRET}` }),
      });
    for (let i = 0; i < BURST; i++) expect((await signIn()).status).toBe(401);
    const res = await signIn();
    expect(res.status).toBe(429);
    expect(Number(res.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(await res.json()).toMatchObject({ code: "resource_exhausted", reason: "AUTH_RATE_LIMITED" });
  });

  it("calls without a key and console session cookies count against the address too", async () => {
    const address = "192.0.2.88";
    const noKey = () =>
      fetch(`${h.url}/nexus.auth.v1.AuthService/WhoAmI`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-forwarded-for": address },
        body: "{}",
      });
    for (let i = 0; i < BURST; i++) expect((await noKey()).status).toBe(401);
    expect((await noKey()).status).toBe(429);

    // An unknown console session (cookie + its CSRF header) from another address.
    const { csrfTokenOf, newSessionToken, SESSION_COOKIE, CSRF_HEADER } = await import("../services/kernel/authz/console-session.js");
    const token = newSessionToken();
    const cookieCall = () =>
      fetch(`${h.url}/nexus.auth.v1.AuthService/WhoAmI`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          cookie: `${SESSION_COOKIE}=${token}`,
          [CSRF_HEADER]: csrfTokenOf(token),
          "x-forwarded-for": "192.0.2.89",
        },
        body: "{}",
      });
    for (let i = 0; i < BURST; i++) expect((await cookieCall()).status).toBe(401);
    const res = await cookieCall();
    expect(res.status).toBe(429);
    expect(res.headers.get("x-ratelimit-scope")).toBe("client_address");
  });
});

describeWithPostgres("refused-authentication limiter without trusted proxies", () => {
  it("X-Forwarded-For from a peer that is not a trusted proxy is ignored (the limiter counts the connection's address)", async () => {
    // Its own server (after the suite above closed its own: one telemetry per process).
    const other = await startAuthHarness({ env: { NEXUS_AUTH_ATTEMPT_BURST: "2", NEXUS_AUTH_ATTEMPT_RATE_PER_SECOND: "0.1" } });
    try {
      const wrong = `nxs_${"1".repeat(24)}_${WRONG_SECRET}`;
      const call = (i: number) =>
        other.client(`${wrong.slice(0, -1)}${i}`).auth.whoAmI({}, { headers: { "x-forwarded-for": `192.0.2.${i}` } });
      expect((await refusalOf(() => call(1))).code).toBe(Code.Unauthenticated);
      expect((await refusalOf(() => call(2))).code).toBe(Code.Unauthenticated);
      // A new invented address each time does not help: 127.0.0.1 used up its refusals.
      const err = await refusalOf(() => call(3));
      expect(errorReason(err)).toBe("AUTH_RATE_LIMITED");
      expect(errorMetadata(err).scope).toBe("client_address");
      // The audit names the connection's address too, not the one the client wrote.
      const audited = (await other.events("AccessDenied")).map((e) => (e.payload as { peerAddress?: string }).peerAddress);
      expect(audited.length).toBeGreaterThanOrEqual(2);
      expect(audited.filter((a) => a?.startsWith("192.0.2."))).toEqual([]);
      expect(audited).toContain("127.0.0.1");
    } finally {
      await other.close();
    }
  }, 120_000);
});
