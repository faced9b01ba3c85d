import { DocumentError } from "./document-error.js";

/** Media types Nexus reads. */
export const MEDIA_TYPES = {
  text: "text/plain",
  markdown: "text/markdown",
  html: "text/html",
  json: "application/json",
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
} as const;

/** One of the supported media types. */
export type SupportedMediaType = (typeof MEDIA_TYPES)[keyof typeof MEDIA_TYPES];

const SUPPORTED = new Set<string>(Object.values(MEDIA_TYPES));

/** Aliases people and tools send for the supported types. */
const ALIASES: Readonly<Record<string, SupportedMediaType>> = {
  "text/x-markdown": MEDIA_TYPES.markdown,
  "text/md": MEDIA_TYPES.markdown,
  "application/xhtml+xml": MEDIA_TYPES.html,
  "text/json": MEDIA_TYPES.json,
  "application/x-pdf": MEDIA_TYPES.pdf,
};

const EXTENSIONS: Readonly<Record<string, SupportedMediaType>> = {
  txt: MEDIA_TYPES.text,
  text: MEDIA_TYPES.text,
  log: MEDIA_TYPES.text,
  csv: MEDIA_TYPES.text,
  md: MEDIA_TYPES.markdown,
  markdown: MEDIA_TYPES.markdown,
  mdx: MEDIA_TYPES.markdown,
  html: MEDIA_TYPES.html,
  htm: MEDIA_TYPES.html,
  xhtml: MEDIA_TYPES.html,
  json: MEDIA_TYPES.json,
  pdf: MEDIA_TYPES.pdf,
  docx: MEDIA_TYPES.docx,
};

/** The media type a file name suggests, if any. */
export function mediaTypeOfFilename(filename: string): SupportedMediaType | undefined {
  const dot = filename.lastIndexOf(".");
  if (dot < 0) return undefined;
  return EXTENSIONS[filename.slice(dot + 1).toLowerCase()];
}

function sniff(bytes: Uint8Array): SupportedMediaType | "binary" | undefined {
  const head = Buffer.from(bytes.subarray(0, 1024));
  if (head.subarray(0, 5).toString("latin1") === "%PDF-") return MEDIA_TYPES.pdf;
  if (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return MEDIA_TYPES.docx;
  if (head.includes(0)) return "binary";
  const start = head.toString("utf8").trimStart().slice(0, 64).toLowerCase();
  if (start.startsWith("<!doctype html") || start.startsWith("<html")) return MEDIA_TYPES.html;
  return undefined;
}

/**
 * Decides how to read an upload: the declared media type when it is one we read (parameters
 * such as `; charset=utf-8` ignored), else the file name's extension, else the content's
 * signature (PDF, ZIP/DOCX, HTML), else plain text for UTF-8 without NUL bytes. A declared
 * type we do not read — or binary content of no known kind — fails with
 * UNSUPPORTED_MEDIA_TYPE; `application/octet-stream` counts as "not declared".
 */
export function resolveMediaType(declared: string, filename: string, bytes: Uint8Array): SupportedMediaType {
  const base = declared.split(";")[0]!.trim().toLowerCase();
  if (base && base !== "application/octet-stream") {
    if (SUPPORTED.has(base)) return base as SupportedMediaType;
    const alias = ALIASES[base];
    if (alias) return alias;
    throw new DocumentError(
      "UNSUPPORTED_MEDIA_TYPE",
      `media type ${base} is not supported; supported: text/plain, text/markdown, text/html, application/json, application/pdf and DOCX`,
    );
  }
  const byName = mediaTypeOfFilename(filename);
  if (byName) return byName;
  const sniffed = sniff(bytes);
  if (sniffed === "binary") {
    throw new DocumentError(
      "UNSUPPORTED_MEDIA_TYPE",
      `cannot tell what ${filename || "the upload"} is: binary content of an unsupported kind`,
    );
  }
  return sniffed ?? MEDIA_TYPES.text;
}
