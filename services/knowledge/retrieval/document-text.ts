/** One stored chunk of a document: its span (code points) and its text. */
export interface StoredChunk {
  ordinal: number;
  charStart: number;
  charEnd: number;
  text: string;
}

/**
 * A document's text rebuilt from its chunks (in ordinal order): each chunk is laid at its
 * offsets, overlaps are taken once, and a gap the chunker left between chunks (whitespace it
 * dropped) is filled with spaces, so every chunk's char_start..char_end (code points) points
 * at its own text in the result.
 */
export function joinChunks(chunks: readonly StoredChunk[]): string {
  const out: string[] = [];
  for (const chunk of [...chunks].sort((a, b) => a.ordinal - b.ordinal)) {
    const points = [...chunk.text];
    if (chunk.charStart > out.length) out.push(...Array.from({ length: chunk.charStart - out.length }, () => " "));
    const from = out.length - chunk.charStart;
    for (let i = Math.max(0, from); i < points.length; i++) out.push(points[i]!);
  }
  return out.join("");
}
