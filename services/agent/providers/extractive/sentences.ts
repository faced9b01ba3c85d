/** A sentence of a passage: its text and where it sits, in Unicode code points. */
export interface Sentence {
  /** The sentence as cited (leading list or heading markers and surrounding blanks removed). */
  text: string;
  /** Offset of its first code point in the passage text. */
  start: number;
  /** Offset just past its last code point (exclusive). */
  end: number;
}

const segmenter = new Intl.Segmenter("en", { granularity: "sentence" });

/** Markdown block markers a sentence may start with: headings, bullets, numbers, quotes. */
const LEADING_MARKERS = /^(?:\s|#{1,6}(?=\s)|[-*+](?=\s)|\d{1,3}[.)](?=\s)|>)+/u;

/**
 * Splits a passage into sentences (Unicode sentence boundaries; a line break also ends one,
 * so Markdown headings and list items stand alone) with exact offsets: `text` is always
 * exactly the code points `start..end` of the passage. Offsets count code points, like the
 * chunk offsets of the retrieval service, so a citation's span is `chunk start + start`.
 */
export function splitSentences(passage: string): Sentence[] {
  // Code-point offset of every UTF-16 index (a surrogate pair is one code point).
  const cpAt = new Int32Array(passage.length + 1);
  let cp = 0;
  for (let i = 0; i < passage.length; i++) {
    cpAt[i] = cp;
    const code = passage.charCodeAt(i);
    const isHighSurrogate = code >= 0xd800 && code <= 0xdbff && i + 1 < passage.length;
    if (isHighSurrogate) {
      const low = passage.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        cpAt[i + 1] = cp;
        i++;
      }
    }
    cp++;
  }
  cpAt[passage.length] = cp;

  const out: Sentence[] = [];
  for (const { segment, index } of segmenter.segment(passage)) {
    // ICU keeps a line's break with it; split further so each line is its own sentence.
    let offset = 0;
    for (const line of segment.split("\n")) {
      const lineStart = index + offset;
      offset += line.length + 1;
      const lead = LEADING_MARKERS.exec(line)?.[0].length ?? 0;
      const trimmedEnd = line.trimEnd().length;
      if (trimmedEnd <= lead) continue;
      const from = lineStart + lead;
      const to = lineStart + trimmedEnd;
      out.push({ text: passage.slice(from, to), start: cpAt[from] ?? 0, end: cpAt[to] ?? 0 });
    }
  }
  return out;
}
