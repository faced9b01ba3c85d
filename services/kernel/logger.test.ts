import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, REDACTED, scrubText, writeFlatLine } from "./logger.js";

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

describe("writeFlatLine", () => {
  const withoutTime = (text: string) => text.replace(/"time":\d+/g, '"time":0');

  it("writes the line pino writes for the same flat fields, redacted the same way", () => {
    const fields = {
      request_id: "6b0f9e3c-2a8e-4d0e-9d2c-2f1f0f5b8c11",
      quoted: 'a "quoted" \\ back\\slash',
      control: "line\nbreak\ttab\u0001",
      backslashOnly: "back\\slash",
      c1Control: "del\u007f next\u0085 end\u009f",
      almostControl: "nbsp\u00a0 tilde~",
      unicode: "grüße ✓ 日本 😀",
      loneSurrogate: "half \ud800 a pair",
      long: `${"x".repeat(120)} \ud800 "q"`,
      api_key: "kept-out",
      note: `issued ${KEY}`,
      count: 3,
      ratio: 0.125,
      nan: Number.NaN,
      flag: false,
      missing: undefined,
    };
    const viaPino = capture();
    viaPino.logger.child({ service: "nexus.auth.v1.AuthService", method: "WhoAmI" }).info(fields, `key ${KEY} ok`);
    const flat = capture();
    const child = flat.logger.child({ service: "nexus.auth.v1.AuthService", method: "WhoAmI" });
    expect(writeFlatLine(child, "info", fields, `key ${KEY} ok`)).toBe(true);
    expect(withoutTime(flat.output())).toBe(withoutTime(viaPino.output()));
    expect(flat.output()).not.toContain(KEY);
    expect(flat.output()).not.toContain("kept-out");
    expect(JSON.parse(flat.output())).toMatchObject({ level: 30, name: "nexus-test", service: "nexus.auth.v1.AuthService", nan: null });
  });

  it("writes nothing and returns false for a field that is not flat, so the caller logs through pino", () => {
    const { logger, output } = capture();
    expect(writeFlatLine(logger, "info", { request_id: "r-1", nested: { a: 1 } }, "msg")).toBe(false);
    expect(output()).toBe("");
  });

  it("follows the logger's level prefix at debug and its pretty destination", () => {
    const pretty = capture(true);
    expect(writeFlatLine(pretty.logger, "debug", { request_id: "r-2" }, "probe ok")).toBe(true);
    expect(pretty.output()).toMatch(/DEBUG\s+probe ok.*request_id=r-2/);
  });
});
