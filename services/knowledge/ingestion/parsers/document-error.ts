/** Machine-readable reasons a document's content cannot become text. */
export type DocumentErrorReason = "UNSUPPORTED_MEDIA_TYPE" | "DOCUMENT_UNREADABLE";

/**
 * Content that can never become text, whatever the number of attempts: an unsupported
 * format or corrupt bytes. Up front it becomes INVALID_ARGUMENT with this reason; in a worker
 * it fails the document at once (no retries, no dead letter).
 */
export class DocumentError extends Error {
  override readonly name = "DocumentError";

  constructor(
    readonly reason: DocumentErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
