import { describe, expect, it } from "vitest";
import { isMalformedPayload, type MalformedPayload, parsePayload } from "./payload.js";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("parsePayload", () => {
  it("parses JSON", () => {
    expect(parsePayload("json", bytes('{"device":{"temp":21.5}}'))).toEqual({ device: { temp: 21.5 } });
  });

  it("turns CSV with a header and several rows into objects (strings, for the mappings to convert)", () => {
    expect(parsePayload("csv", bytes('\uFEFFid,temp,note\n1,21.5,"a, quoted"\n2, 22 ,\n\n'))).toEqual([
      { id: "1", temp: "21.5", note: "a, quoted" },
      { id: "2", temp: "22", note: "" },
    ]);
  });

  it("hands raw payloads over as base64", () => {
    expect(parsePayload("raw", new Uint8Array([0, 255, 1]))).toBe("AP8B");
  });

  it.each([
    ["json", "{not json", /not valid JSON/],
    ["json", new Uint8Array([0xff, 0xfe]), /not valid UTF-8/],
    ["csv", "id,temp\n1,2,3\n", /not valid CSV/],
    ["csv", "id,temp\n", /no data rows/],
  ] as const)("marks a malformed %s payload instead of throwing (%#)", (format, payload, reason) => {
    const raw = typeof payload === "string" ? bytes(payload) : payload;
    const parsed = parsePayload(format, raw);
    expect(isMalformedPayload(parsed)).toBe(true);
    expect((parsed as MalformedPayload).reason).toMatch(reason);
    expect(JSON.parse(JSON.stringify(parsed))).toEqual({
      malformed: true,
      format,
      reason: (parsed as MalformedPayload).reason,
      base64: Buffer.from(raw).toString("base64"),
    });
  });
});
