import { convert as htmlToText } from "html-to-text";
import mammoth from "mammoth";
import { extractText as extractPdfText, getDocumentProxy } from "unpdf";
import { DocumentError } from "./document-error.js";
import { MEDIA_TYPES, type SupportedMediaType } from "./media-types.js";

/**
 * Cleans extracted text for storage and chunking: one newline convention, no NUL or other
 * control characters (PostgreSQL text cannot hold NUL), no lone surrogates, no runs of more
 * than two blank lines, no trailing spaces on lines.
 */
export function normalizeText(text: string): string {
  return (
    text
      .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD")
      .replace(/\r\n?/g, "\n")
      // biome-ignore lint/suspicious/noControlCharactersInRegex: removing control characters from extracted text is the point
      .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, "")
      .replace(/[ \t]+\n/g, "\n")
      .replace(/\n{3,}/g, "\n\n")
      .trim()
  );
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
const cp1252 = new TextDecoder("windows-1252");

/** UTF-8 (BOM stripped); bytes that are not UTF-8 are read as Windows-1252, the usual legacy encoding. */
export function decodeText(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return cp1252.decode(bytes);
  }
}

function unreadable(what: string, err?: unknown): DocumentError {
  const detail = err instanceof Error && err.message ? `: ${err.message}` : "";
  return new DocumentError("DOCUMENT_UNREADABLE", `${what}${detail}`, err === undefined ? {} : { cause: err });
}

/** The `text` of a JSON document `{"text": "…"}`. */
function jsonText(raw: string): string {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw unreadable("the JSON document does not parse", err);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value) || typeof (value as { text?: unknown }).text !== "string") {
    throw unreadable('a JSON document must be an object with a string field "text", e.g. {"text": "…"}');
  }
  return (value as { text: string }).text;
}

function htmlText(html: string): string {
  return htmlToText(html, {
    wordwrap: false,
    selectors: [
      { selector: "a", options: { ignoreHref: true } },
      { selector: "img", format: "skip" },
      { selector: "script", format: "skip" },
      { selector: "style", format: "skip" },
      { selector: "noscript", format: "skip" },
      { selector: "h1", options: { uppercase: false } },
      { selector: "h2", options: { uppercase: false } },
      { selector: "h3", options: { uppercase: false } },
      { selector: "h4", options: { uppercase: false } },
      { selector: "h5", options: { uppercase: false } },
      { selector: "h6", options: { uppercase: false } },
      { selector: "table", options: { uppercaseHeaderCells: false } },
    ],
    limits: { maxInputLength: Number.MAX_SAFE_INTEGER },
  });
}

async function pdfText(bytes: Uint8Array): Promise<string> {
  let pages: string[];
  try {
    // pdf.js may detach the buffer it is given: hand it a copy.
    const pdf = await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
    try {
      pages = (await extractPdfText(pdf, { mergePages: false })).text;
    } finally {
      // Frees pdf.js's per-document caches (the method is missing from unpdf's declarations).
      await (pdf as unknown as { destroy?: () => Promise<void> }).destroy?.().catch(() => undefined);
    }
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    if (name === "PasswordException") throw unreadable("the PDF is encrypted with a password");
    throw unreadable("the PDF cannot be read", err);
  }
  const text = pages.join("\n\n");
  if (text.trim() === "") throw unreadable("the PDF has no extractable text (scanned pages need OCR before ingestion)");
  return text;
}

async function docxText(bytes: Uint8Array): Promise<string> {
  try {
    const result = await mammoth.extractRawText({ buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
    return result.value;
  } catch (err) {
    throw unreadable("the DOCX file cannot be read", err);
  }
}

/**
 * The text of a document, normalised ({@link normalizeText}). Formats: plain text and
 * markdown (as written), JSON `{"text": …}`, HTML (visible text, block structure kept as
 * blank lines; scripts and styles dropped), PDF (pdf.js via unpdf, pages separated by blank
 * lines) and DOCX (mammoth). Corrupt content or content without text throws
 * {@link DocumentError} DOCUMENT_UNREADABLE.
 */
export async function extractText(mediaType: SupportedMediaType, bytes: Uint8Array): Promise<string> {
  let raw: string;
  switch (mediaType) {
    case MEDIA_TYPES.text:
    case MEDIA_TYPES.markdown:
      raw = decodeText(bytes);
      break;
    case MEDIA_TYPES.json:
      raw = jsonText(decodeText(bytes));
      break;
    case MEDIA_TYPES.html:
      raw = htmlText(decodeText(bytes));
      break;
    case MEDIA_TYPES.pdf:
      raw = await pdfText(bytes);
      break;
    case MEDIA_TYPES.docx:
      raw = await docxText(bytes);
      break;
    default: {
      const _exhaustive: never = mediaType;
      throw new DocumentError("UNSUPPORTED_MEDIA_TYPE", `media type ${String(_exhaustive)} is not supported`);
    }
  }
  const text = normalizeText(raw);
  if (text === "") throw unreadable("the document contains no text");
  return text;
}

/**
 * Cheap checks done before a document is accepted, so obviously broken uploads fail at once
 * with INVALID_ARGUMENT instead of later as FAILED documents: JSON must have its text field,
 * PDF must start with the PDF signature, DOCX must be a ZIP archive. Full extraction happens
 * in the worker.
 */
export function precheckContent(mediaType: SupportedMediaType, bytes: Uint8Array): void {
  const head = Buffer.from(bytes.subarray(0, 8));
  switch (mediaType) {
    case MEDIA_TYPES.json:
      if (normalizeText(jsonText(decodeText(bytes))) === "") throw unreadable("the JSON document's text is empty");
      return;
    case MEDIA_TYPES.text:
    case MEDIA_TYPES.markdown:
      if (normalizeText(decodeText(bytes)) === "") throw unreadable("the document contains no text");
      return;
    case MEDIA_TYPES.pdf:
      if (!Buffer.from(bytes.subarray(0, 1024)).includes("%PDF-")) throw unreadable("the file is not a PDF (no %PDF- signature)");
      return;
    case MEDIA_TYPES.docx:
      if (!(head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)) {
        throw unreadable("the file is not a DOCX document (not a ZIP archive)");
      }
      return;
    default:
      return;
  }
}
