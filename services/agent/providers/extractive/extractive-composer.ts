import type { CitationDraft, Passage } from "../ports.js";
import { splitSentences } from "./sentences.js";
import { contentTerms } from "./terms.js";

/** Tuning of {@link composeExtractiveAnswer}; the defaults are what the provider uses. */
export interface ComposeOptions {
  /** Most sentences in an answer. Default 3. */
  maxSentences?: number;
  /** Most characters of quoted sentences. Default 900. */
  maxChars?: number;
  /** Share of the question's weighted terms a sentence must contain to count as relevant. Default 0.34. */
  minCoverage?: number;
  /** Sentences with fewer content words are ignored (headings, fragments). Default 3. */
  minWords?: number;
}

/** An extractive answer: its text and one citation per quoted sentence. */
export interface ExtractiveAnswer {
  text: string;
  citations: CitationDraft[];
  /** False when nothing relevant was retrieved (the answer says it does not know). */
  grounded: boolean;
}

/** The answer when no retrieved sentence is relevant to the question. */
export const DONT_KNOW_ANSWER = "I don't know: nothing retrieved from this corpus answers that question.";

/** Sentence endings that mark a statement (a title or label has none). */
const TERMINAL = /[.!?:;)"'”’`]$/u;

/**
 * True for headings and labels: a short line without terminal punctuation ("Rotating an API
 * key" in extracted Markdown) names a topic but answers nothing.
 */
function isTitle(sentence: string): boolean {
  return !TERMINAL.test(sentence) && sentence.split(/\s+/).length < 8;
}

interface Candidate {
  passage: number;
  start: number;
  end: number;
  text: string;
  terms: ReadonlySet<string>;
  words: number;
  coverage: number;
  score: number;
}

/**
 * Composes an answer from the retrieved passages alone, deterministically: every sentence of
 * every passage is scored by how much of the question it covers (question terms weighted by
 * rarity among the candidate sentences, so "key" in a corpus about keys weighs less than
 * "rotate"), slightly favouring short sentences and better-ranked passages; the best few
 * above the relevance bar (and the sentence right after each, when it shares a question
 * term) are quoted verbatim in passage order, each followed by its citation marker [n] and
 * cited with its exact span. When no sentence clears the bar the
 * answer says it does not know and cites nothing.
 */
export function composeExtractiveAnswer(question: string, passages: readonly Passage[], options: ComposeOptions = {}): ExtractiveAnswer {
  const maxSentences = options.maxSentences ?? 3;
  const maxChars = options.maxChars ?? 900;
  const minCoverage = options.minCoverage ?? 0.34;
  const minWords = options.minWords ?? 3;

  const queryTerms = [...new Set(contentTerms(question))];
  if (queryTerms.length === 0 || passages.length === 0) return { text: DONT_KNOW_ANSWER, citations: [], grounded: false };

  const candidates: Candidate[] = [];
  const seen = new Set<string>();
  passages.forEach((p, passage) => {
    for (const s of splitSentences(p.text)) {
      const terms = contentTerms(s.text);
      if (terms.length < minWords || isTitle(s.text)) continue;
      // Overlapping chunks repeat sentences: keep the first (best-ranked) copy.
      const key = `${p.documentId}\u0000${p.charStart + s.start}`;
      const textKey = s.text.replace(/\s+/g, " ").toLowerCase();
      if (seen.has(key) || seen.has(textKey)) continue;
      seen.add(key);
      seen.add(textKey);
      candidates.push({
        passage,
        start: s.start,
        end: s.end,
        text: s.text,
        terms: new Set(terms),
        words: terms.length,
        coverage: 0,
        score: 0,
      });
    }
  });
  if (candidates.length === 0) return { text: DONT_KNOW_ANSWER, citations: [], grounded: false };

  const n = candidates.length;
  const weight = new Map<string, number>();
  for (const t of queryTerms) {
    let df = 0;
    for (const c of candidates) if (c.terms.has(t)) df++;
    // A term no candidate contains would otherwise weigh most of all, so one word the corpus
    // never uses ("policy" in "What is our refund policy?") would silence a good answer:
    // weigh it like a term found once.
    weight.set(t, Math.log(1 + n / (1 + Math.max(df, 1))));
  }
  const total = [...weight.values()].reduce((a, b) => a + b, 0);
  for (const c of candidates) {
    let matched = 0;
    for (const t of queryTerms) if (c.terms.has(t)) matched += weight.get(t) ?? 0;
    c.coverage = total > 0 ? matched / total : 0;
    c.score = c.coverage + 0.05 / (1 + c.passage) + 0.02 / Math.sqrt(c.words);
  }

  const ranked = candidates
    .filter((c) => c.coverage >= minCoverage)
    .sort((a, b) => b.score - a.score || a.passage - b.passage || a.start - b.start);
  const best = ranked[0];
  if (best === undefined) return { text: DONT_KNOW_ANSWER, citations: [], grounded: false };

  const chosen: Candidate[] = [];
  let chars = 0;
  const take = (c: Candidate): void => {
    if (chosen.length >= maxSentences || chosen.includes(c)) return;
    if (chosen.length > 0 && chars + c.text.length > maxChars) return;
    chosen.push(c);
    chars += c.text.length;
  };
  for (const c of ranked) {
    // Weak companions dilute a precise answer.
    if (c.coverage < best.coverage * 0.6) break;
    take(c);
  }
  // The sentence right after a chosen one often carries its detail ("… the grace period.
  // The grace period defaults to 24 hours."): keep it when it shares a question term.
  for (const c of [...chosen]) {
    const next = candidates[candidates.indexOf(c) + 1];
    if (next !== undefined && next.passage === c.passage && next.coverage > 0) take(next);
  }
  chosen.sort((a, b) => a.passage - b.passage || a.start - b.start);

  const parts: string[] = [];
  const citations: CitationDraft[] = [];
  chosen.forEach((c, i) => {
    parts.push(`${c.text} [${i + 1}]`);
    citations.push({ passage: c.passage, start: c.start, end: c.end });
  });
  return { text: parts.join(" "), citations, grounded: true };
}
