import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { type Document, DocumentStatus } from "../../../gen/nexus/ingestion/v1/document_pb.js";
import { IngestionService } from "../../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import type { SearchHit } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { Principal } from "../../../services/kernel/context.js";
import { ingestion, retrieval } from "../api.js";
import { can } from "../can.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";

const STATUS: Record<DocumentStatus, string> = {
  [DocumentStatus.UNSPECIFIED]: "unknown",
  [DocumentStatus.QUEUED]: "queued",
  [DocumentStatus.PROCESSING]: "processing",
  [DocumentStatus.SUCCEEDED]: "ready",
  [DocumentStatus.FAILED]: "failed",
};

/** What the upload accepts; the server tells the media type from the name and the bytes. */
const ACCEPT =
  ".txt,.md,.markdown,.html,.htm,.json,.pdf,.docx,text/*,application/json,application/pdf,application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/** One file's way in: read, sent, then its document's progress as WatchDocument reports it. */
interface Upload {
  id: number;
  name: string;
  stage: "sending" | "watching" | "done" | "failed";
  doc?: Document;
  error?: unknown;
}

function progressOf(u: Upload): number {
  if (u.stage === "done") return 100;
  const p = u.doc?.progress;
  if (!p || p.chunksTotal === 0) return u.stage === "sending" ? 5 : 15;
  return Math.round(15 + (85 * p.chunksDone) / p.chunksTotal);
}

function Uploads({ corpusId, onChange }: { corpusId: string; onChange: () => void }) {
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [over, setOver] = useState(false);
  const set = (i: number, u: Partial<Upload>) => setUploads((all) => all.map((x, j) => (j === i ? { ...x, ...u } : x)));
  const start = (files: File[]) => {
    const base = uploads.length;
    setUploads((all) => [...all, ...files.map((f, k) => ({ id: base + k, name: f.name, stage: "sending" as const }))]);
    files.forEach(async (file, k) => {
      const i = base + k;
      try {
        // One unary UploadFile per file (binary PDF and DOCX too): the same pipeline as UploadDocument.
        const content = new Uint8Array(await file.arrayBuffer());
        const res = await ingestion.uploadFile({
          header: { corpusId, filename: file.name, overwrite: true, sizeBytes: BigInt(content.byteLength) },
          content,
        });
        const doc = res.document!;
        set(i, { stage: "watching", doc });
        if (res.unchanged || doc.status === DocumentStatus.SUCCEEDED) {
          set(i, { stage: "done" });
        } else {
          for await (const ev of ingestion.watchDocument({ documentId: doc.id })) {
            const d = ev.document!;
            set(i, { doc: d });
            if (d.status === DocumentStatus.SUCCEEDED) {
              set(i, { stage: "done" });
              break;
            }
            if (d.status === DocumentStatus.FAILED) {
              set(i, { stage: "failed" });
              break;
            }
          }
        }
      } catch (error) {
        set(i, { stage: "failed", error });
      } finally {
        onChange();
      }
    });
  };
  return (
    <div>
      <section
        aria-label="Drop files here"
        className={`dropzone${over ? " over" : ""}`}
        data-testid="dropzone"
        onDragOver={(e) => {
          e.preventDefault();
          setOver(true);
        }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => {
          e.preventDefault();
          setOver(false);
          start([...e.dataTransfer.files]);
        }}
      >
        <p>Drop PDF, DOCX, text, Markdown, HTML or JSON files here, or</p>
        <label className="button" htmlFor="files">
          choose files
        </label>
        <input
          id="files"
          className="sr-only-focusable"
          type="file"
          multiple
          accept={ACCEPT}
          onChange={(e) => {
            start([...(e.target.files ?? [])]);
            e.target.value = "";
          }}
        />
        <p className="muted">Files larger than the request limit (4 MiB unless configured): `nexus ingest`.</p>
      </section>
      {uploads.length > 0 ? (
        <ul className="plain uploads" aria-label="Uploads">
          {uploads.map((u) => (
            <li key={u.id} data-testid="upload" data-stage={u.stage}>
              <span>{u.name}</span> <progress max={100} value={progressOf(u)} aria-label={`${u.name} progress`} />{" "}
              <span>
                {u.stage === "done" ? "ready" : u.stage === "failed" ? "failed" : u.doc ? STATUS[u.doc.status] : "sending"}
                {u.doc?.progress && u.stage !== "done" ? ` (${u.doc.progress.chunksDone}/${u.doc.progress.chunksTotal} chunks)` : ""}
              </span>
              {u.stage === "failed" && u.doc?.failureMessage ? (
                <span className="warn">
                  {" "}
                  {u.doc.failureReason}: {u.doc.failureMessage}
                </span>
              ) : null}
              {u.error ? <ErrorBox error={u.error} /> : null}
            </li>
          ))}
        </ul>
      ) : null}
    </div>
  );
}

function SearchBox({ corpusId }: { corpusId: string }) {
  const [query, setQuery] = useState("");
  const [hits, setHits] = useState<SearchHit[]>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  return (
    <div>
      <form
        className="row"
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            setHits((await retrieval.search({ corpusId, query })).hits);
          } catch (err) {
            setError(err);
          } finally {
            setBusy(false);
          }
        }}
      >
        <label htmlFor="search" className="sr-only">
          Search the corpus
        </label>
        <input id="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Search passages (hybrid)…" />
        <button type="submit" disabled={busy || query.trim() === ""}>
          Search
        </button>
      </form>
      {error ? <ErrorBox error={error} /> : null}
      {hits && hits.length === 0 ? <Empty>No passage matches.</Empty> : null}
      {hits && hits.length > 0 ? (
        <ol className="hits" data-testid="hits">
          {hits.map((h) => (
            <li key={h.chunkId}>
              <strong>{h.filename || h.documentId}</strong> §{h.chunkOrdinal + 1} — score {h.fusedScore.toFixed(4)}
              <span className="muted">
                {" "}
                (vector {h.vectorScore?.toFixed(3) ?? "—"}, lexical {h.lexicalScore?.toFixed(3) ?? "—"})
              </span>
              <p>{h.text}</p>
            </li>
          ))}
        </ol>
      ) : null}
    </div>
  );
}

export default function Corpora({ principal }: { principal: Principal }) {
  const queryClient = useQueryClient();
  const corpora = useQuery(RetrievalService.method.listCorpora, { pageSize: 200 });
  const [selected, setSelected] = useState("");
  const corpusId = selected || corpora.data?.corpora[0]?.id || "";
  const documents = useQuery(IngestionService.method.listDocuments, { corpusId, pageSize: 200 }, { enabled: corpusId !== "" });
  const [newId, setNewId] = useState("");
  const [newName, setNewName] = useState("");
  const [error, setError] = useState<unknown>();
  const mayCreate = can(principal, "/nexus.retrieval.v1.RetrievalService/CreateCorpus");
  const mayEdit = can(principal, "/nexus.retrieval.v1.RetrievalService/UpdateCorpus");
  const current = corpora.data?.corpora.find((c) => c.id === corpusId);
  const [editName, setEditName] = useState<string>();
  const [editDescription, setEditDescription] = useState<string>();
  const mayWrite = can(principal, "/nexus.ingestion.v1.IngestionService/UploadFile");
  const refresh = () => void queryClient.invalidateQueries();
  const act = async (f: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await f();
      refresh();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div>
      <Section title="Corpora">
        {corpora.isPending ? <Loading what="corpora" /> : null}
        {corpora.error ? <ErrorBox error={corpora.error} onRetry={() => void corpora.refetch()} /> : null}
        {corpora.data && corpora.data.corpora.length === 0 ? <Empty>No corpora yet.</Empty> : null}
        <fieldset className="tabs">
          <legend className="sr-only">Choose a corpus</legend>
          {corpora.data?.corpora.map((c) => (
            <button key={c.id} type="button" aria-pressed={c.id === corpusId} onClick={() => setSelected(c.id)}>
              {c.displayName || c.id}
            </button>
          ))}
        </fieldset>
        {mayCreate ? (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              void act(async () => {
                await retrieval.createCorpus({ corpusId: newId, displayName: newName || newId });
                setSelected(newId);
                setNewId("");
                setNewName("");
              });
            }}
          >
            <label htmlFor="corpus-id">New corpus id</label>
            <input
              id="corpus-id"
              value={newId}
              onChange={(e) => setNewId(e.target.value)}
              required
              pattern="[A-Za-z0-9][A-Za-z0-9._:\-]*"
            />
            <label htmlFor="corpus-name">Name</label>
            <input id="corpus-name" value={newName} onChange={(e) => setNewName(e.target.value)} />
            <button type="submit">Create corpus</button>
          </form>
        ) : null}
        {error ? <ErrorBox error={error} /> : null}
      </Section>
      {corpusId && current && mayEdit ? (
        <Section title={`Corpus ${current.id}`}>
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              void act(async () => {
                await retrieval.updateCorpus({
                  corpusId,
                  displayName: editName ?? current.displayName,
                  description: editDescription ?? current.description,
                  updateMask: { paths: ["display_name", "description"] },
                });
                setEditName(undefined);
                setEditDescription(undefined);
              });
            }}
          >
            <label htmlFor="edit-name">Corpus name</label>
            <input id="edit-name" value={editName ?? current.displayName} onChange={(e) => setEditName(e.target.value)} />
            <label htmlFor="edit-description">Corpus description</label>
            <input
              id="edit-description"
              value={editDescription ?? current.description}
              onChange={(e) => setEditDescription(e.target.value)}
            />
            <button type="submit">Save</button>
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (window.confirm(`Delete corpus ${current.id} with all its documents?`)) {
                  void act(async () => {
                    await retrieval.deleteCorpus({ corpusId, force: true });
                    setSelected("");
                  });
                }
              }}
            >
              Delete corpus
            </button>
          </form>
        </Section>
      ) : null}
      {corpusId ? (
        <>
          {mayWrite ? (
            <Section title="Upload">
              <Uploads corpusId={corpusId} onChange={refresh} />
            </Section>
          ) : null}
          <Section title="Search">
            <SearchBox corpusId={corpusId} />
          </Section>
          <Section title="Documents">
            {documents.isPending ? <Loading what="documents" /> : null}
            {documents.error ? <ErrorBox error={documents.error} onRetry={() => void documents.refetch()} /> : null}
            {documents.data && documents.data.documents.length === 0 ? <Empty>No documents in this corpus yet.</Empty> : null}
            {documents.data && documents.data.documents.length > 0 ? (
              <table>
                <thead>
                  <tr>
                    <th scope="col">File</th>
                    <th scope="col">State</th>
                    <th scope="col">Chunks</th>
                    <th scope="col">Updated</th>
                    {mayWrite ? <th scope="col">Actions</th> : null}
                  </tr>
                </thead>
                <tbody>
                  {documents.data.documents.map((d) => (
                    <tr key={d.id}>
                      <td>{d.filename || d.id}</td>
                      <td>
                        {STATUS[d.status]}
                        {d.status === DocumentStatus.FAILED ? (
                          <span className="warn">
                            {" "}
                            — {d.failureReason}: {d.failureMessage}
                          </span>
                        ) : null}
                      </td>
                      <td>{d.chunkCount}</td>
                      <td>{when(d.updatedAt)}</td>
                      {mayWrite ? (
                        <td>
                          <button type="button" onClick={() => void act(() => ingestion.reindexDocument({ documentId: d.id }))}>
                            Reindex<span className="sr-only"> {d.filename}</span>
                          </button>{" "}
                          <button
                            type="button"
                            className="danger"
                            onClick={() => {
                              if (window.confirm(`Delete ${d.filename || d.id}?`))
                                void act(() => ingestion.deleteDocument({ documentId: d.id }));
                            }}
                          >
                            Delete<span className="sr-only"> {d.filename}</span>
                          </button>
                        </td>
                      ) : null}
                    </tr>
                  ))}
                </tbody>
              </table>
            ) : null}
          </Section>
        </>
      ) : null}
    </div>
  );
}
