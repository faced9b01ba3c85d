/** Default target chunk size in characters. */
export const DEFAULT_CHUNK_SIZE = 1200;
/** Default characters shared by consecutive chunks. */
export const DEFAULT_CHUNK_OVERLAP = 150;

/** How to split a text. */
export interface ChunkingSettings {
  /** Target (and maximum) chunk length in characters. Default 1200. */
  size: number;
  /** Characters the next chunk repeats from the end of the previous one; less than `size`. Default 150. */
  overlap: number;
}

/** One chunk of a text. */
export interface TextChunk {
  /** Position in the document, from 0. */
  ordinal: number;
  /** Offset of the first character in the text, in Unicode code points. */
  charStart: number;
  /** Offset just past the last character, in code points (exclusive). */
  charEnd: number;
  /** Exactly the text between the offsets. */
  text: string;
}

/** Boundary strengths, strongest last: where a chunk may end and the next one begin. */
const WORD = 0;
const SENTENCE = 1;
const LINE = 2;
const PARAGRAPH = 3;

/** Sentence-ending punctuation, optionally followed by closing quotes or brackets. */
const SENTENCE_END = /[.!?…。！？][)"'”’\]]*$/;

/**
 * Where units of the text start: the index right after every whitespace run, with the
 * run's strength (blank line = paragraph, line break = line, after sentence punctuation =
 * sentence, else word). One regex pass; typed arrays keep big documents cheap.
 */
function boundaries(text: string): { pos: Int32Array; strength: Uint8Array; count: number } {
  const estimate = Math.max(16, Math.ceil(text.length / 4));
  let pos = new Int32Array(estimate);
  let strength = new Uint8Array(estimate);
  let count = 0;
  const ws = /\s+/g;
  for (let m = ws.exec(text); m; m = ws.exec(text)) {
    const end = m.index + m[0].length;
    if (end >= text.length || m.index === 0) continue;
    const run = m[0];
    let s = WORD;
    const newlines = run.split("\n").length - 1;
    if (newlines >= 2) s = PARAGRAPH;
    else if (newlines === 1) s = LINE;
    else if (SENTENCE_END.test(text.slice(Math.max(0, m.index - 4), m.index))) s = SENTENCE;
    if (count === pos.length) {
      const p2 = new Int32Array(pos.length * 2);
      p2.set(pos);
      pos = p2;
      const s2 = new Uint8Array(strength.length * 2);
      s2.set(strength);
      strength = s2;
    }
    pos[count] = end;
    strength[count] = s;
    count++;
  }
  return { pos, strength, count };
}

/** Index of the first boundary at or after `at` (count when none). */
function lowerBound(pos: Int32Array, count: number, at: number): number {
  let lo = 0;
  let hi = count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pos[mid]! < at) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Converts UTF-16 indices to code point offsets, cheaply for nearby successive positions. */
class CodePoints {
  private unit = 0;
  private point = 0;
  private readonly identity: boolean;

  constructor(private readonly text: string) {
    this.identity = !/[\uD800-\uDFFF]/.test(text);
  }

  at(index: number): number {
    if (this.identity) return index;
    while (this.unit < index) {
      const c = this.text.charCodeAt(this.unit);
      this.unit += c >= 0xd800 && c <= 0xdbff && this.unit + 1 < this.text.length ? 2 : 1;
      this.point += 1;
    }
    while (this.unit > index) {
      const c = this.text.charCodeAt(this.unit - 1);
      this.unit -= c >= 0xdc00 && c <= 0xdfff && this.unit >= 2 ? 2 : 1;
      this.point -= 1;
    }
    return this.point;
  }
}

const isSpace = (c: number): boolean => c === 32 || (c >= 9 && c <= 13) || c === 0xa0 || c === 0x2028 || c === 0x2029;

/**
 * Splits text into chunks of at most `size` characters that end where the text has a natural
 * break — a paragraph if one falls in the second half of the window, else a line break, a
 * sentence end, a space, and only for unbroken runs a hard cut — and start the next chunk
 * `overlap` characters earlier at a sentence or word start, so context carries over without
 * cutting words. Whitespace at chunk edges is trimmed; every chunk's text is exactly
 * `text[charStart, charEnd)` in code points. Deterministic: same text and settings, same chunks.
 */
export function chunkText(text: string, settings: Partial<ChunkingSettings> = {}): TextChunk[] {
  const size = settings.size ?? DEFAULT_CHUNK_SIZE;
  const overlap = settings.overlap ?? DEFAULT_CHUNK_OVERLAP;
  if (!Number.isInteger(size) || size < 1) throw new RangeError("chunk size must be a positive integer");
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= size) {
    throw new RangeError("chunk overlap must be an integer from 0 to less than the chunk size");
  }
  const { pos, strength, count } = boundaries(text);
  const cp = new CodePoints(text);
  const chunks: TextChunk[] = [];
  let start = 0;
  while (start < text.length) {
    // Skip leading whitespace so chunks never start blank.
    while (start < text.length && isSpace(text.charCodeAt(start))) start++;
    if (start >= text.length) break;
    const limit = start + size;
    let end: number;
    if (limit >= text.length) {
      end = text.length;
    } else {
      // Best break in the second half of the window: strongest, then latest.
      const from = lowerBound(pos, count, start + Math.floor(size / 2) + 1);
      let best = -1;
      let bestStrength = -1;
      for (let i = lowerBound(pos, count, limit + 1) - 1; i >= from; i--) {
        const s = strength[i]!;
        if (s > bestStrength) {
          best = pos[i]!;
          bestStrength = s;
          if (s === PARAGRAPH) break;
        }
      }
      if (best < 0) {
        // No break in the second half: any word break in the window, else a hard cut.
        const i = lowerBound(pos, count, limit + 1) - 1;
        best = i >= 0 && pos[i]! > start ? pos[i]! : limit;
      }
      end = best;
      // Never split a surrogate pair.
      const c = text.charCodeAt(end - 1);
      if (c >= 0xd800 && c <= 0xdbff && end - 1 > start) end -= 1;
    }
    const a = start;
    let b = end;
    while (b > a && isSpace(text.charCodeAt(b - 1))) b--;
    if (b > a) {
      chunks.push({ ordinal: chunks.length, charStart: cp.at(a), charEnd: cp.at(b), text: text.slice(a, b) });
    }
    if (end >= text.length) break;
    // Next chunk: begin `overlap` before the end, at the earliest sentence start in that span,
    // else the earliest word start; always move forward.
    let next = end;
    if (overlap > 0) {
      const from = Math.max(start + 1, end - overlap);
      let word = -1;
      for (let i = lowerBound(pos, count, from); i < count && pos[i]! < end; i++) {
        if (strength[i]! >= SENTENCE) {
          next = pos[i]!;
          word = -2;
          break;
        }
        if (word === -1) word = pos[i]!;
      }
      if (word >= 0) next = word;
      else if (word === -1) {
        // An unbroken run (no spaces at all): overlap by a hard cut.
        next = end - overlap;
        const c = text.charCodeAt(next);
        if (c >= 0xdc00 && c <= 0xdfff) next -= 1;
      }
    }
    start = next > start ? next : end;
  }
  return chunks;
}
