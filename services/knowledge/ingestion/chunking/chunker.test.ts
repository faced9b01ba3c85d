import { describe, expect, it } from "vitest";
import { chunkText, DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE } from "./chunker.js";

const codePoints = (s: string) => Array.from(s);

function sentence(i: number): string {
  return `Sentence number ${i} talks about topic ${i % 7} in some detail, with enough words to matter.`;
}

describe("chunkText", () => {
  it("uses 1200/150 by default and returns one chunk for short text", () => {
    expect(DEFAULT_CHUNK_SIZE).toBe(1200);
    expect(DEFAULT_CHUNK_OVERLAP).toBe(150);
    const chunks = chunkText("  Just one short paragraph.  ");
    expect(chunks).toEqual([{ ordinal: 0, charStart: 2, charEnd: 27, text: "Just one short paragraph." }]);
  });

  it("gives every chunk its exact span of the text, in code points, with consecutive ordinals", () => {
    const text = Array.from({ length: 300 }, (_, i) => sentence(i) + (i % 9 === 8 ? "\n\n" : " ")).join("");
    const chunks = chunkText(text, { size: 500, overlap: 80 });
    const points = codePoints(text);
    expect(chunks.length).toBeGreaterThan(10);
    chunks.forEach((c, i) => {
      expect(c.ordinal).toBe(i);
      expect(points.slice(c.charStart, c.charEnd).join("")).toBe(c.text);
      expect(c.text.length).toBeLessThanOrEqual(500);
      expect(c.text).toBe(c.text.trim());
    });
    // Together the chunks cover the whole text (every non-space character is in some chunk).
    const covered = new Uint8Array(points.length);
    for (const c of chunks) covered.fill(1, c.charStart, c.charEnd);
    points.forEach((ch, i) => {
      if (ch.trim() !== "") expect(covered[i], `character ${i}`).toBe(1);
    });
  });

  it("keeps sentences whole and starts the overlap at a sentence start", () => {
    const text = Array.from({ length: 60 }, (_, i) => sentence(i)).join(" ");
    const chunks = chunkText(text, { size: 400, overlap: 120 });
    for (const c of chunks) {
      expect(c.text.startsWith("Sentence number"), c.text.slice(0, 40)).toBe(true);
      expect(c.text.endsWith("to matter."), c.text.slice(-40)).toBe(true);
    }
    // Consecutive chunks share text (overlap) but never start at the same place.
    for (let i = 1; i < chunks.length; i++) {
      expect(chunks[i]!.charStart).toBeGreaterThan(chunks[i - 1]!.charStart);
      expect(chunks[i]!.charStart).toBeLessThan(chunks[i - 1]!.charEnd);
    }
  });

  it("prefers paragraph breaks over sentence breaks", () => {
    const para = (n: number) => Array.from({ length: 3 }, (_, i) => sentence(n * 10 + i)).join(" ");
    const text = [para(1), para(2), para(3), para(4)].join("\n\n");
    const chunks = chunkText(text, { size: 400, overlap: 0 });
    for (const c of chunks) expect(c.text.includes("\n\n")).toBe(false);
    expect(chunks.map((c) => c.text)).toEqual([para(1), para(2), para(3), para(4)]);
  });

  it("cuts unbroken runs hard, never splitting a surrogate pair, and counts offsets in code points", () => {
    const emoji = "😀";
    const text = `${emoji.repeat(250)} tail`;
    const chunks = chunkText(text, { size: 101, overlap: 10 });
    const points = codePoints(text);
    for (const c of chunks) {
      expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(c.text)).toBe(false);
      expect(points.slice(c.charStart, c.charEnd).join("")).toBe(c.text);
    }
    expect(chunks[chunks.length - 1]!.text.endsWith("tail")).toBe(true);
  });

  it("is deterministic and rejects overlap >= size", () => {
    const text = Array.from({ length: 40 }, (_, i) => sentence(i)).join(" ");
    expect(chunkText(text, { size: 300, overlap: 50 })).toEqual(chunkText(text, { size: 300, overlap: 50 }));
    expect(() => chunkText(text, { size: 300, overlap: 300 })).toThrow(/overlap/);
  });
});
