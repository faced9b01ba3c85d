import { describe, expect, it } from "vitest";
import { corruptDocx, corruptPdf, makeDocx, makePdf } from "../../../../tests/support/rag/documents.js";
import { DocumentError } from "./document-error.js";
import { extractText, precheckContent } from "./extract-text.js";
import { MEDIA_TYPES, resolveMediaType } from "./media-types.js";

const utf8 = (s: string) => new TextEncoder().encode(s);

async function failure(p: Promise<unknown> | (() => unknown)): Promise<DocumentError> {
  try {
    await (typeof p === "function" ? p() : p);
  } catch (err) {
    if (err instanceof DocumentError) return err;
    throw err;
  }
  throw new Error("expected a DocumentError");
}

describe("extractText: every supported format", () => {
  it("reads plain text and markdown as written, normalising line ends and dropping NUL", async () => {
    expect(await extractText(MEDIA_TYPES.text, utf8("Line one\r\nLine two\u0000\r\n\r\n\r\n\r\nEnd"))).toBe("Line one\nLine two\n\nEnd");
    expect(await extractText(MEDIA_TYPES.markdown, utf8("# Title\n\nSome *markdown* text."))).toBe("# Title\n\nSome *markdown* text.");
  });

  it("reads Windows-1252 bytes that are not UTF-8", async () => {
    expect(await extractText(MEDIA_TYPES.text, Uint8Array.from([0x63, 0x61, 0x66, 0xe9]))).toBe("café");
  });

  it('reads JSON {"text": …} and refuses other JSON', async () => {
    expect(await extractText(MEDIA_TYPES.json, utf8('{"text": "Hello from JSON", "other": 1}'))).toBe("Hello from JSON");
    expect((await failure(extractText(MEDIA_TYPES.json, utf8('{"body": "x"}')))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(extractText(MEDIA_TYPES.json, utf8("{not json")))).reason).toBe("DOCUMENT_UNREADABLE");
  });

  it("reads the visible text of HTML, without scripts, styles or link targets", async () => {
    const html = `<!doctype html><html><head><title>T</title><style>p{color:red}</style></head>
      <body><h1>Refund policy</h1><p>Refunds take <b>30 days</b>.</p><script>alert("x")</script>
      <ul><li>first</li><li>second</li></ul><a href="https://example.com/secret">contact us</a></body></html>`;
    const text = await extractText(MEDIA_TYPES.html, utf8(html));
    expect(text).toContain("Refund policy");
    expect(text).toContain("Refunds take 30 days.");
    expect(text).toContain("first");
    expect(text).toContain("contact us");
    expect(text).not.toContain("alert");
    expect(text).not.toContain("color:red");
    expect(text).not.toContain("example.com");
  });

  it("reads the text layer of a PDF", async () => {
    const text = await extractText(MEDIA_TYPES.pdf, makePdf(["Quarterly report for the board.", "Revenue grew by nine percent."]));
    expect(text).toContain("Quarterly report for the board.");
    expect(text).toContain("Revenue grew by nine percent.");
  });

  it("reads the paragraphs of a DOCX", async () => {
    const text = await extractText(MEDIA_TYPES.docx, makeDocx(["Employee handbook", "Vacation days accrue monthly."]));
    expect(text).toBe("Employee handbook\n\nVacation days accrue monthly.");
  });

  it("fails corrupt PDF and DOCX files as DOCUMENT_UNREADABLE, never with a crash", async () => {
    expect((await failure(extractText(MEDIA_TYPES.pdf, corruptPdf()))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(extractText(MEDIA_TYPES.docx, corruptDocx()))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(extractText(MEDIA_TYPES.docx, utf8("PK\u0003\u0004 truncated")))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(extractText(MEDIA_TYPES.text, utf8("   \n\n  ")))).reason).toBe("DOCUMENT_UNREADABLE");
  });
});

describe("resolveMediaType and precheckContent", () => {
  it("trusts a supported declared type, then the extension, then the content's signature", () => {
    expect(resolveMediaType("text/markdown; charset=utf-8", "x.bin", utf8("# hi"))).toBe(MEDIA_TYPES.markdown);
    expect(resolveMediaType("", "report.PDF", utf8("whatever"))).toBe(MEDIA_TYPES.pdf);
    expect(resolveMediaType("application/octet-stream", "notes", makePdf(["x"]))).toBe(MEDIA_TYPES.pdf);
    expect(resolveMediaType("", "handbook", makeDocx(["x"]))).toBe(MEDIA_TYPES.docx);
    expect(resolveMediaType("", "page", utf8("<!DOCTYPE html><p>x</p>"))).toBe(MEDIA_TYPES.html);
    expect(resolveMediaType("", "README", utf8("plain words"))).toBe(MEDIA_TYPES.text);
  });

  it("refuses unsupported types and unknown binary content with UNSUPPORTED_MEDIA_TYPE", async () => {
    expect((await failure(() => resolveMediaType("image/png", "cat.png", Uint8Array.from([137, 80, 78, 71])))).reason).toBe(
      "UNSUPPORTED_MEDIA_TYPE",
    );
    expect((await failure(() => resolveMediaType("", "blob", Uint8Array.from([1, 0, 2, 0, 3])))).reason).toBe("UNSUPPORTED_MEDIA_TYPE");
  });

  it("catches obviously broken uploads before they are queued", async () => {
    expect((await failure(() => precheckContent(MEDIA_TYPES.pdf, utf8("not a pdf")))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(() => precheckContent(MEDIA_TYPES.docx, utf8("not a zip")))).reason).toBe("DOCUMENT_UNREADABLE");
    expect((await failure(() => precheckContent(MEDIA_TYPES.json, utf8('{"text": 5}')))).reason).toBe("DOCUMENT_UNREADABLE");
    expect(() => precheckContent(MEDIA_TYPES.pdf, makePdf(["ok"]))).not.toThrow();
  });
});
