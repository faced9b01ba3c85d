import type { Embedder } from "./ports.js";

/** Words too common to say anything about a passage; left out of hash vectors. */
const STOP_WORDS = new Set(
  (
    "a an and are as at be but by for from has have he her his i if in into is it its me my not of on or our " +
    "she so than that the their them then there these they this to was we were what when where which who will " +
    "with you your do does did how can could would should"
  ).split(" "),
);

/** 32-bit FNV-1a over UTF-16 code units, with a seed so one string can feed several hashes. */
function fnv1a(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32) so nearby strings spread over the buckets.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** Lower-cased words (letters and digits, any script) of a text, without stop words. */
export function hashTokens(text: string): string[] {
  const words =
    text
      .normalize("NFKC")
      .toLowerCase()
      .match(/[\p{L}\p{N}]+/gu) ?? [];
  return words.filter((w) => !STOP_WORDS.has(w));
}

/**
 * A deterministic embedding by feature hashing: every word adds ±1 to one bucket and its
 * character trigrams add ±0.4 each, then the vector is L2-normalised. Same text, same vector,
 * on every machine and in every process, with no model and no network: the offline default.
 * Trigrams make it forgiving of inflections and typos ("reindexing" ≈ "reindex"), which the
 * full-text ranking misses; synonyms it cannot know (use an OpenAI-compatible model for that).
 */
export function hashEmbedding(text: string, dimensions: number): Float32Array {
  const v = new Float32Array(dimensions);
  const add = (feature: string, weight: number) => {
    const h = fnv1a(feature, 0);
    const sign = fnv1a(feature, 0x9e3779b9) & 1 ? 1 : -1;
    v[h % dimensions]! += sign * weight;
  };
  for (const word of hashTokens(text)) {
    add(`w:${word}`, 1);
    if (word.length > 3) {
      const padded = `<${word}>`;
      for (let i = 0; i + 3 <= padded.length; i++) add(`g:${padded.slice(i, i + 3)}`, 0.4);
    }
  }
  let norm = 0;
  for (let i = 0; i < dimensions; i++) norm += v[i]! * v[i]!;
  if (norm > 0) {
    const inv = 1 / Math.sqrt(norm);
    for (let i = 0; i < dimensions; i++) v[i]! *= inv;
  }
  return v;
}

/** Name of the hash model at a dimension count, e.g. "hash-256". */
export function hashModelName(dimensions: number): string {
  return `hash-${dimensions}`;
}

/** True for "hash" and "hash-<n>" model names. */
export function isHashModel(model: string): boolean {
  return /^hash(-\d+)?$/.test(model);
}

/** Dimensions named by a hash model ("hash-384" → 384); 256 for plain "hash". */
export function hashModelDimensions(model: string): number {
  const m = /^hash-(\d+)$/.exec(model);
  return m ? Number(m[1]) : 256;
}

/** The `hash` embeddings adapter (see {@link hashEmbedding}). */
export function createHashEmbedder(dimensions: number): Embedder {
  return {
    model: hashModelName(dimensions),
    dimensions,
    async embed(texts, options) {
      const out: Float32Array[] = [];
      // Yield to the event loop between slices so a big document does not starve other work.
      for (let i = 0; i < texts.length; i++) {
        options?.signal?.throwIfAborted();
        out.push(hashEmbedding(texts[i]!, dimensions));
        if ((i + 1) % 256 === 0) {
          await options?.onProgress?.(i + 1);
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
      }
      await options?.onProgress?.(texts.length);
      return out;
    },
  };
}
