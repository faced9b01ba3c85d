import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { digestOf, generateApiKey, parseApiKey, parseDigestHex, verifyApiKey } from "./api-key-secret.js";

describe("API key material", () => {
  it("is nxs_<key id>_<256-bit base64url secret>, and only its SHA-256 is kept", () => {
    const k = generateApiKey();
    const m = /^nxs_([0-9a-f]{24})_([A-Za-z0-9_-]{43})$/.exec(k.plaintext);
    expect(m?.[1]).toBe(k.keyId);
    expect(Buffer.from(m![2]!, "base64url")).toHaveLength(32);
    expect(Buffer.from(k.digest).toString("hex")).toBe(createHash("sha256").update(k.plaintext).digest("hex"));
    expect(k.displayPrefix).toBe(`nxs_${k.keyId}_`);
    expect(generateApiKey().plaintext).not.toBe(k.plaintext);
  });

  it("parses well-formed keys only", () => {
    const k = generateApiKey();
    expect(parseApiKey(k.plaintext)).toEqual({ keyId: k.keyId });
    expect(parseApiKey(`${k.plaintext}x`)).toBeUndefined();
    expect(parseApiKey("Bearer abc")).toBeUndefined();
    expect(parseApiKey(`nxs_${k.keyId}`)).toBeUndefined();
  });

  it("verifies against the stored digest (wrong secret, unknown key → false)", () => {
    const k = generateApiKey();
    expect(verifyApiKey(k.plaintext, k.digest)).toBe(true);
    expect(verifyApiKey(`${k.plaintext.slice(0, -1)}A`, k.digest)).toBe(k.plaintext.endsWith("A"));
    expect(verifyApiKey(k.plaintext, undefined)).toBe(false);
    expect(verifyApiKey(k.plaintext, digestOf("other"))).toBe(false);
  });

  it("reads hex digests as sha256sum prints them", () => {
    const hex = createHash("sha256").update("x").digest("hex");
    expect(parseDigestHex(hex.toUpperCase())).toEqual(Buffer.from(hex, "hex"));
    expect(parseDigestHex("abc")).toBeUndefined();
  });
});
