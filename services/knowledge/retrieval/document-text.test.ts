import { describe, expect, it } from "vitest";
import { joinChunks } from "./document-text.js";

describe("joinChunks", () => {
  it("lays overlapping chunks at their offsets once, fills dropped whitespace, and keeps code-point offsets exact", () => {
    const text = "Café ☕ first part. Second 🍵 part here. Third.";
    const points = [...text];
    const span = (start: number, end: number) => points.slice(start, end).join("");
    const chunks = [
      { ordinal: 1, charStart: 10, charEnd: 30, text: span(10, 30) },
      { ordinal: 0, charStart: 0, charEnd: 18, text: span(0, 18) },
      { ordinal: 2, charStart: 31, charEnd: points.length, text: span(31, points.length) },
    ];
    const joined = joinChunks(chunks);
    expect([...joined].length).toBe(points.length);
    for (const c of chunks) expect([...joined].slice(c.charStart, c.charEnd).join("")).toBe(c.text);
    expect(joined).toBe(`${span(0, 30)} ${span(31, points.length)}`);
  });

  it("is empty without chunks", () => {
    expect(joinChunks([])).toBe("");
  });
});
