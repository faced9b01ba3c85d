import { describe, expect, it } from "vitest";
import type { Passage } from "../ports.js";
import { composeExtractiveAnswer, DONT_KNOW_ANSWER } from "./extractive-composer.js";
import { splitSentences } from "./sentences.js";
import { contentTerms, UNICODE_WORDS } from "./terms.js";

const KEYS = [
  "# Rotating API keys",
  "",
  "API keys authenticate every call to Nexus. To rotate an API key, run `nexus keys rotate <key id>`: Nexus issues a new secret and the old one keeps working for the grace period.",
  "The grace period defaults to 24 hours. Revoked keys stop working at once.",
].join("\n");
const QUOTAS = "Quotas limit how many runs a tenant may start per day and per month. Platform operators set them with `nexus quota set`.";

function passage(text: string, documentId: string, ordinal = 0, charStart = 0): Passage {
  return {
    documentId,
    chunkOrdinal: ordinal,
    charStart,
    charEnd: charStart + [...text].length,
    text,
    score: 0.5,
    filename: `${documentId}.md`,
  };
}

function cp(text: string, start: number, end: number): string {
  return [...text].slice(start, end).join("");
}

describe("sentence splitting", () => {
  it("gives exact code-point spans and strips Markdown markers", () => {
    const text = "## Héllo 🌍 world\n- First item here. Second one 😀 too.\n";
    const sentences = splitSentences(text);
    expect(sentences.map((s) => s.text)).toEqual(["Héllo 🌍 world", "First item here.", "Second one 😀 too."]);
    for (const s of sentences) expect(cp(text, s.start, s.end)).toBe(s.text);
  });
});

describe("content terms", () => {
  it("splits identifiers, drops stop words and stems inflections alike", () => {
    expect(contentTerms("How do I rotate an API key?")).toEqual(["rotat", "api", "key"]);
    expect(contentTerms("RotateApiKey rotates keys; rotation, rotating")).toEqual([
      "rotat",
      "api",
      "key",
      "rotat",
      "key",
      "rotat",
      "rotat",
    ]);
  });

  it("splits ASCII text exactly as the Unicode patterns do, and keeps non-ASCII words whole", () => {
    // Random ASCII text heavy in what the patterns look at: case changes, digits, apostrophes,
    // underscores and punctuation (a fixed seed: the same cases every run).
    let seed = 42;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    const alphabet = "abcXYZ019'_- .,;:!?\t\nRotateApiKEYsHTTPServer";
    const texts = [KEYS, QUOTAS, "HTTPServer getHTTPResponse2XX don't API'S isn'tIt x'y '' a1B2c3"];
    for (let i = 0; i < 2000; i++) {
      let text = "";
      for (let n = next() % 60; n > 0; n--) text += alphabet[next() % alphabet.length];
      texts.push(text);
    }
    for (const text of texts) expect(contentTerms(text), JSON.stringify(text)).toEqual(contentTerms(text, UNICODE_WORDS));
    expect(contentTerms("Größe der Schlüssel: ÄnderungÜber naïveCafé")).toEqual([
      "größ",
      "der",
      "schlüssel",
      "änderung",
      "über",
      "naïv",
      "café",
    ]);
  });
});

describe("extractive composer", () => {
  it("quotes the sentence that answers the question and cites its exact span", () => {
    const passages = [passage(QUOTAS, "quotas"), passage(KEYS, "keys", 3, 1000)];
    const answer = composeExtractiveAnswer("How do I rotate an API key?", passages);
    expect(answer.grounded).toBe(true);
    expect(answer.text).toContain("To rotate an API key, run `nexus keys rotate <key id>`");
    expect(answer.citations.length).toBeGreaterThan(0);
    for (const c of answer.citations) {
      const p = passages[c.passage]!;
      const quoted = cp(p.text, c.start, c.end);
      expect(answer.text).toContain(quoted);
    }
    const first = answer.citations[0]!;
    expect(passages[first.passage]!.documentId).toBe("keys");
    expect(answer.text.startsWith(cp(passages[first.passage]!.text, first.start, first.end))).toBe(true);
    expect(answer.text).not.toContain("Quotas limit");
  });

  it("is deterministic", () => {
    const passages = [passage(KEYS, "keys"), passage(QUOTAS, "quotas")];
    const a = composeExtractiveAnswer("What is the grace period of a rotated key?", passages);
    const b = composeExtractiveAnswer("What is the grace period of a rotated key?", passages);
    expect(a).toEqual(b);
    expect(a.text).toContain("The grace period defaults to 24 hours.");
  });

  it("keeps the detail sentence that follows the best one", () => {
    const answer = composeExtractiveAnswer("What is the grace period of a rotated key?", [passage(KEYS, "keys")]);
    expect(answer.text).toContain("the old one keeps working for the grace period. [1] The grace period defaults to 24 hours. [2]");
  });

  it("never quotes a heading, which names a topic but answers nothing", () => {
    const text = "Rotating an API key\n\nTo rotate an API key, run nexus keys rotate: the old key keeps working for a while.";
    const answer = composeExtractiveAnswer("How do I rotate an API key?", [passage(text, "keys")]);
    expect(answer.text).toBe("To rotate an API key, run nexus keys rotate: the old key keeps working for a while. [1]");
  });

  it("says it does not know when nothing relevant was retrieved", () => {
    const answer = composeExtractiveAnswer("What is the boiling point of mercury?", [passage(KEYS, "keys"), passage(QUOTAS, "quotas")]);
    expect(answer).toEqual({ text: DONT_KNOW_ANSWER, citations: [], grounded: false });
    expect(composeExtractiveAnswer("How do I rotate a key?", []).grounded).toBe(false);
  });

  it("answers although the question uses a word the corpus never does", () => {
    const refunds = "Customers may return goods within 30 days for a full refund. Refunds are paid to the original card.";
    const shipping = "Shipping takes five business days inside the EU.";
    const answer = composeExtractiveAnswer("What is our refund policy?", [passage(refunds, "refunds"), passage(shipping, "shipping")]);
    expect(answer.grounded).toBe(true);
    expect(answer.text).toContain("for a full refund");
    expect(answer.text).not.toContain("Shipping");
    // …but a question about something else entirely still gets "I don't know".
    expect(
      composeExtractiveAnswer("How do I rotate a kubernetes secret?", [passage(refunds, "refunds"), passage(shipping, "shipping")])
        .grounded,
    ).toBe(false);
  });

  it("does not quote the same sentence twice from overlapping chunks", () => {
    const overlap = passage(KEYS, "keys", 0, 0);
    const again = passage(KEYS, "keys", 1, 0);
    const answer = composeExtractiveAnswer("rotate API key grace period", [overlap, again]);
    const quotes = answer.citations.map((c) => cp(KEYS, c.start, c.end));
    expect(new Set(quotes).size).toBe(quotes.length);
  });
});
