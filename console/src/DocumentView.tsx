import { useQuery } from "@connectrpc/connect-query";
import { useEffect, useRef } from "react";
import type { Citation } from "../../gen/nexus/agent/v1/session_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { ErrorBox, Loading } from "./ui.js";

/** The text before, in and after [start, end) — offsets in code points, as citations count them. */
export function splitAt(text: string, start: number, end: number): [string, string, string] {
  const points = [...text];
  return [points.slice(0, start).join(""), points.slice(start, end).join(""), points.slice(end).join("")];
}

/**
 * A citation opened in its full document (GetDocumentText, access-checked like GetDocument):
 * the document's text with the cited passage highlighted and scrolled into view. When the
 * text cannot be read (deleted, restricted), the citation's own quote is shown with the reason.
 */
export function CitedDocument({ citation, onClose }: { citation: Citation; onClose: () => void }) {
  const close = useRef<HTMLButtonElement>(null);
  const passage = useRef<HTMLElement>(null);
  const doc = useQuery(RetrievalService.method.getDocumentText, { documentId: citation.documentId });
  // Keyboard users land on the Close button (and return with it).
  useEffect(() => close.current?.focus(), []);
  useEffect(() => {
    if (doc.data) passage.current?.scrollIntoView({ block: "center" });
  }, [doc.data]);
  const [before, cited, after] = doc.data ? splitAt(doc.data.text, citation.charStart, citation.charEnd) : ["", "", ""];
  return (
    <div className="dialog" role="dialog" aria-modal="false" aria-labelledby="passage-title">
      <h3 id="passage-title">
        {citation.filename || citation.documentId} · passage {citation.chunkOrdinal + 1}
      </h3>
      <p className="muted">
        Characters {citation.charStart}–{citation.charEnd} · score {citation.score.toFixed(3)}
      </p>
      {doc.isPending ? <Loading what="the document" /> : null}
      {doc.error ? (
        <>
          <ErrorBox error={doc.error} />
          <blockquote>
            <mark data-testid="cited-passage">{citation.quote}</mark>
          </blockquote>
        </>
      ) : null}
      {doc.data ? (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (axe scrollable-region-focusable)
        <section className="document" aria-label="Document text" tabIndex={0} data-testid="document-text">
          {before}
          <mark data-testid="cited-passage" ref={passage}>
            {cited || citation.quote}
          </mark>
          {after}
        </section>
      ) : null}
      <button type="button" onClick={onClose} ref={close}>
        Close
      </button>
    </div>
  );
}
