import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, REDACTED, scrubText } from "./logger.js";

function capture(pretty = false) {
  let out = "";
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      out += chunk.toString();
      done();
    },
  });
  const logger = createLogger({ name: "nexus-test", level: "debug", pretty, destination });
  return { logger, output: () => out };
}

const KEY = "nxs_k7f3a9_Q2hhbmdlIG1lIGFuZCBrZWVwIGl0IHNlY3JldCBwbGVhc2U";
const SECRETS = [
  KEY,
  "Bearer-token-value-0001",
  "hunter2-password",
  "sk-api-key-123456",
  "deep-nested-secret-xyz",
  "plaintext-key-abc",
  "child-binding-token-777",
  "url-password-999",
  "pg-password-555",
  "url-object-pw-444",
];

describe("createLogger", () => {
  it("never writes secrets, whatever shape they come in", () => {
    const { logger, output } = capture();
    logger.info({ authorization: `Bearer ${SECRETS[1]}` }, "top-level authorization");
    logger.info({ req: { headers: { authorization: `Bearer ${SECRETS[1]}`, "x-api-key": SECRETS[3] } } }, "nested headers");
    logger.info({ headers: new Headers({ Authorization: `Bearer ${SECRETS[1]}` }) }, "fetch headers");
    logger.info({ user: { password: SECRETS[2] }, api_key: SECRETS[3], apiKey: SECRETS[3] }, "credentials");
    logger.info({ a: { b: { c: { d: { secret: SECRETS[4] } } } } }, "deeply nested");
    logger.info({ created: { plaintext: SECRETS[5], token: SECRETS[6] } }, "a new key");
    logger.info(`issued key ${KEY} to tenant acme`);
    logger.info({ note: `the caller sent ${KEY}` }, "key in a field value");
    logger.info("connecting to %s", `postgres://nexus:${SECRETS[7]}@db:5432/nexus`);
    logger.error({ err: new Error(`auth failed for ${KEY}`) }, "error carrying a key");
    logger.warn(`driver said: password=${SECRETS[8]} host=db`);
    logger.child({ token: SECRETS[6], request_id: "r1" }).info("child with a secret binding");
    logger.info({ target: new URL(`nats://nexus:${SECRETS[9]}@nats:4222`) }, "URL object");

    const text = output();
    for (const s of SECRETS) expect(text, s).not.toContain(s);
    expect(text).toContain(REDACTED);
    // Non-secret context survives.
    expect(text).toContain("tenant acme");
    expect(text).toContain('"request_id":"r1"');
    expect(text).toContain("nxs_[REDACTED]");
    expect(text).toContain("nats://nexus:[REDACTED]@nats:4222");
    expect(text.trim().split("\n")).toHaveLength(13);
  });

  it("writes pretty lines on request, redacted just the same", () => {
    const { logger, output } = capture(true);
    logger.info({ request_id: "r2", apiKey: SECRETS[3] }, `hello ${KEY}`);
    const text = output();
    expect(text).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}hello nxs_\[REDACTED\] request_id=r2 apiKey=\[REDACTED\]\n$/);
  });

  it("scrubs keys, bearer tokens, URL passwords and password= pairs from text", () => {
    expect(scrubText(`key ${KEY}.`)).toBe("key nxs_[REDACTED].");
    expect(scrubText("scim nxscim_0123456789abcdef01234567_c2VjcmV0LXNlY3JldC1zZWNyZXQ")).toBe("scim nxscim_[REDACTED]");
    expect(scrubText("session nxss_1b4e28ba-2fa1-11d2-883f-0016d3cca427_abcdef")).toBe("session nxss_[REDACTED]");
    expect(scrubText("Authorization: Bearer abcdefghijkl")).toBe("Authorization: Bearer [REDACTED]");
    expect(scrubText("nats://user:pw123@nats:4222")).toBe("nats://user:[REDACTED]@nats:4222");
    expect(scrubText("password=abc user=x")).toBe("password=[REDACTED] user=x");
    expect(scrubText("nothing to see")).toBe("nothing to see");
  });
});
