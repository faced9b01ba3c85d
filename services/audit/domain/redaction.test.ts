import { describe, expect, it } from "vitest";
import { isSensitiveKey, REDACTED, redact } from "./redaction.js";

describe("audit redaction", () => {
  it("redacts the seed's keys at any depth, in objects and arrays", () => {
    const input = {
      key_id: "k1",
      api_key: "nxs_abc_secretsecret",
      nested: { deeper: [{ password: "hunter2", keep: 1 }, { Authorization: "Bearer abc" }], token: { a: 1 } },
      providerConfig: { clientSecret: "s3cr3t", endpoint: "https://example.com", accessToken: "t" },
      message: { text: "the user's question", content: ["raw document"], content_sha256: "ab12" },
    };
    expect(redact(input)).toEqual({
      key_id: "k1",
      api_key: REDACTED,
      nested: { deeper: [{ password: REDACTED, keep: 1 }, { Authorization: REDACTED }], token: REDACTED },
      providerConfig: { clientSecret: REDACTED, endpoint: "https://example.com", accessToken: REDACTED },
      message: { text: REDACTED, content: REDACTED, content_sha256: "ab12" },
    });
  });

  it("redacts credentials that appear as values under harmless keys", () => {
    expect(redact({ note: "used nxs_k1-ab_0123456789abcdef", header: "Bearer eyJhbGciOi.x.y", ok: "nxs" })).toEqual({
      note: REDACTED,
      header: REDACTED,
      ok: "nxs",
    });
  });

  it("does not mistake identifiers for secrets, and honours extra keys", () => {
    for (const k of ["key_id", "successor_key_id", "input_tokens", "token_counts_estimated", "context", "contentSha256"]) {
      expect(isSensitiveKey(k)).toBe(false);
    }
    for (const k of ["apiKey", "x-api-key", "refresh_token", "DB_PASSWORD", "messageText"]) expect(isSensitiveKey(k)).toBe(true);
    expect(redact({ ssn: "123", name: "a" }, ["ssn"])).toEqual({ ssn: REDACTED, name: "a" });
  });
});
