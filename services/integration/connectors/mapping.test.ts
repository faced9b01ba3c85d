import { describe, expect, it } from "vitest";
import { applyMappings, validateMappings } from "./mapping.js";
import { ConnectorError, type FieldMapping } from "./ports.js";

const input = {
  device: { id: "dev-7", temp: "21.5", count: "42", on: "yes", meta: { fw: "1.2" }, tags: ["a", "b"] },
  at: "2026-12-06T05:00:00Z",
  epochS: 1_765_000_000,
  nothing: null,
};

describe("applyMappings: type conversion", () => {
  it.each<[string, FieldMapping, unknown]>([
    ["string stays", { source: "device.id", column: "id", type: "string" }, "dev-7"],
    ["number from text", { source: "device.temp", column: "t", type: "number" }, 21.5],
    ["integer from text", { source: "device.count", column: "c", type: "integer" }, 42],
    ["boolean from yes", { source: "device.on", column: "on", type: "boolean" }, true],
    ["json of an object", { source: "device.meta", column: "m", type: "json" }, '{"fw":"1.2"}'],
    ["untyped array becomes JSON text", { source: "device.tags", column: "tags" }, '["a","b"]'],
    ["array index in a path", { source: "device.tags.1", column: "tag" }, "b"],
    ["number to string", { source: "epochS", column: "s", type: "string" }, "1765000000"],
  ])("%s", (_, mapping, expected) => {
    expect(applyMappings([mapping], input)).toEqual({ [mapping.column]: expected });
  });

  it("reads ISO text and epoch seconds or milliseconds as the same instant", () => {
    const row = applyMappings(
      [
        { source: "at", column: "a", type: "timestamp" },
        { source: "s", column: "b", type: "timestamp" },
        { source: "ms", column: "c", type: "timestamp" },
      ],
      { at: "2026-12-06T05:00:00Z", s: 1_796_533_200, ms: 1_796_533_200_000 },
    );
    expect((row.a as Date).toISOString()).toBe("2026-12-06T05:00:00.000Z");
    expect((row.b as Date).toISOString()).toBe("2026-12-06T05:00:00.000Z");
    expect((row.c as Date).toISOString()).toBe("2026-12-06T05:00:00.000Z");
  });

  it.each<[string, FieldMapping, Record<string, unknown>, RegExp]>([
    [
      "text that is no number",
      { source: "v", column: "c", type: "number" },
      { v: "abc" },
      /field "v" \(column "c"\) should be a number but is a string/,
    ],
    [
      "fraction is no integer",
      { source: "v", column: "c", type: "integer" },
      { v: 1.5 },
      /should be an integer but is a fractional number/,
    ],
    ["object is no string", { source: "v", column: "c", type: "string" }, { v: { a: 1 } }, /should be a string but is an object/],
    ["word is no boolean", { source: "v", column: "c", type: "boolean" }, { v: "maybe" }, /should be a boolean but is a string/],
    [
      "garbage is no timestamp",
      { source: "v", column: "c", type: "timestamp" },
      { v: "not a date" },
      /should be a timestamp but is a string/,
    ],
  ])("MAPPING_FAILED names field, column and types: %s", (_, mapping, value, message) => {
    let caught: unknown;
    try {
      applyMappings([mapping], value);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConnectorError);
    expect((caught as ConnectorError).reason).toBe("MAPPING_FAILED");
    expect((caught as ConnectorError).retryable).toBe(false);
    expect((caught as ConnectorError).message).toMatch(message);
  });

  it("never puts the value itself into the message (payloads may be personal data)", () => {
    expect(() => applyMappings([{ source: "ssn", column: "c", type: "integer" }], { ssn: "123-45-6789" })).toThrowError(
      expect.objectContaining({ message: expect.not.stringContaining("123-45-6789") }),
    );
  });
});

describe("applyMappings: nulls, defaults, partial updates", () => {
  const m = (over: Partial<FieldMapping>): FieldMapping => ({ source: "x", column: "c", ...over });
  it.each<[string, FieldMapping, Record<string, unknown>, Record<string, unknown>]>([
    ["missing → null by default", m({}), {}, { c: null }],
    ["null → null", m({ nullStrategy: "null" }), { x: null }, { c: null }],
    ["missing with skip → column left out", m({ nullStrategy: "skip" }), {}, {}],
    ["null with default → default converted", m({ type: "integer", default: "7", nullStrategy: "default" }), { x: null }, { c: 7 }],
    ["a default implies the default strategy", m({ default: "n/a" }), {}, { c: "n/a" }],
    ["present value wins over the default", m({ default: "n/a" }), { x: "v" }, { c: "v" }],
  ])("%s", (_, mapping, value, expected) => {
    expect(applyMappings([mapping], value)).toEqual(expected);
  });

  it("partial: an absent field leaves its column out, an explicit null follows the strategy", () => {
    const mappings: FieldMapping[] = [
      { source: "id", column: "id", type: "integer" },
      { source: "name", column: "name", default: "anon" },
      { source: "note", column: "note" },
    ];
    expect(applyMappings(mappings, { id: 1 }, { partial: true })).toEqual({ id: 1 });
    expect(applyMappings(mappings, { id: 1, note: null }, { partial: true })).toEqual({ id: 1, note: null });
    expect(applyMappings(mappings, { id: 1 })).toEqual({ id: 1, name: "anon", note: null });
  });

  it("does not read through the prototype", () => {
    expect(applyMappings([{ source: "toString", column: "c", nullStrategy: "skip" }], {})).toEqual({});
  });
});

describe("validateMappings (save time)", () => {
  it("accepts a good list", () => {
    expect(validateMappings([{ source: "device.temp", column: "temp", type: "number", default: 0 }])).toEqual([]);
  });
  it.each<[string, unknown[], RegExp]>([
    ["empty list", [], /at least one mapping/],
    [
      "duplicate column (any case)",
      [
        { source: "a", column: "temp" },
        { source: "b", column: "TEMP" },
      ],
      /mapping 2: column "TEMP" is already mapped by mapping 1/,
    ],
    ["unknown type", [{ source: "a", column: "c", type: "float" }], /type "float" is unknown/],
    ["unknown null strategy", [{ source: "a", column: "c", nullStrategy: "zero" }], /null strategy "zero" is unknown/],
    ["double dot path", [{ source: "a..b", column: "c" }], /empty segment/],
    ["trailing dot path", [{ source: "a.", column: "c" }], /empty segment/],
    ["empty path", [{ source: "", column: "c" }], /source is empty/],
    ["prototype path", [{ source: "a.__proto__", column: "c" }], /reserved segment/],
    ["column with a quote", [{ source: "a", column: 'c"; DROP TABLE x; --' }], /may only hold letters/],
    ["default strategy without default", [{ source: "a", column: "c", nullStrategy: "default" }], /needs a default value/],
    ["default of the wrong type", [{ source: "a", column: "c", type: "integer", default: "many" }], /does not convert to an integer/],
  ])("refuses %s", (_, mappings, message) => {
    const problems = validateMappings(mappings as FieldMapping[]);
    expect(problems.join("\n")).toMatch(message);
  });
});
