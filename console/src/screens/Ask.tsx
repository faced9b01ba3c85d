import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import type { RunResponse } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { AgentService } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { type Citation, type Message, MessageRole } from "../../../gen/nexus/agent/v1/session_pb.js";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { resumableRun, watchRunResumable } from "../../../services/client/resumable-run.js";
import { agent, errorReason, runEnded } from "../api.js";
import { CitedDocument } from "../DocumentView.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";

interface Turn {
  id: number;
  role: "user" | "assistant";
  text: string;
  citations: Citation[];
}

/**
 * The answer in progress, kept in the tab's sessionStorage so that a reload (or the tab
 * reopened) reattaches to it: ids and the last seq only — never a key or a token. Removed
 * when the run ends or is cancelled.
 */
interface InFlight {
  requestId: string;
  sessionId: string;
  corpusId: string;
  question: string;
  lastSeq: string;
}

const IN_FLIGHT = "nexus.ask.inFlight";

function readInFlight(): InFlight | undefined {
  try {
    const raw = sessionStorage.getItem(IN_FLIGHT);
    const v = raw ? (JSON.parse(raw) as Partial<InFlight>) : undefined;
    return v && typeof v.requestId === "string" && v.requestId !== "" && typeof v.sessionId === "string"
      ? {
          requestId: v.requestId,
          sessionId: v.sessionId,
          corpusId: v.corpusId ?? "",
          question: v.question ?? "",
          lastSeq: v.lastSeq ?? "0",
        }
      : undefined;
  } catch {
    return undefined;
  }
}

function writeInFlight(v: InFlight | undefined): void {
  try {
    if (v) sessionStorage.setItem(IN_FLIGHT, JSON.stringify(v));
    else sessionStorage.removeItem(IN_FLIGHT);
  } catch {
    // Storage refused (private mode, quota): a reload then simply does not reattach.
  }
}

const toTurns = (messages: Message[]): Turn[] =>
  messages.map((m, i) => ({
    id: i,
    role: m.role === MessageRole.USER ? "user" : "assistant",
    text: m.text,
    citations: m.citations,
  }));

export default function Ask() {
  const queryClient = useQueryClient();
  const corpora = useQuery(RetrievalService.method.listCorpora, { pageSize: 200 });
  const [corpusId, setCorpusId] = useState("");
  const corpus = corpusId || corpora.data?.corpora[0]?.id || "";
  const sessions = useQuery(AgentService.method.listSessions, { corpusId: corpus, pageSize: 50 }, { enabled: corpus !== "" });
  const [sessionId, setSessionId] = useState("");
  const [provider, setProvider] = useState("");
  const [turns, setTurns] = useState<Turn[]>([]);
  const [question, setQuestion] = useState("");
  const [running, setRunning] = useState(false);
  const [reconnecting, setReconnecting] = useState(false);
  const [error, setError] = useState<unknown>();
  const [open, setOpen] = useState<Citation>();
  const abort = useRef<AbortController | undefined>(undefined);
  const requestId = useRef("");

  const resume = async (id: string) => {
    setSessionId(id);
    setError(undefined);
    try {
      const res = await agent.getSession({ sessionId: id });
      setTurns(toTurns(res.messages));
    } catch (err) {
      setError(err);
    }
  };

  /** Set when the page is being left (reload, close): the run then stays kept for the next load. */
  const leaving = useRef(false);
  const inFlight = useRef<InFlight | undefined>(undefined);
  const keep = (v: InFlight | undefined) => {
    inFlight.current = v;
    writeInFlight(v);
  };

  /** Renders a run's events as they come; the answer is the last turn. */
  const follow = async (events: AsyncIterable<RunResponse>, controller: AbortController, started: InFlight) => {
    abort.current = controller;
    const update = (f: (t: Turn) => Turn) => setTurns((all) => [...all.slice(0, -1), f(all[all.length - 1]!)]);
    let runSession = started.sessionId;
    try {
      for await (const ev of events) {
        setReconnecting(false);
        switch (ev.event.case) {
          case "accepted":
            requestId.current = ev.event.value.requestId;
            runSession = ev.event.value.sessionId;
            setSessionId(runSession);
            keep({ ...started, requestId: requestId.current, sessionId: runSession, lastSeq: ev.seq.toString() });
            break;
          case "tokenDelta": {
            const text = ev.event.value.text;
            update((t) => ({ ...t, text: t.text + text }));
            break;
          }
          case "messageFinal": {
            const final = ev.event.value;
            update((t) => ({ ...t, text: final.text, citations: final.citations }));
            break;
          }
          case "error":
            setError(new Error(`${ev.event.value.message} (${ev.event.value.reason})`));
            break;
          default:
            break;
        }
        if (inFlight.current && ev.event.case !== "accepted") keep({ ...inFlight.current, lastSeq: ev.seq.toString() });
      }
      keep(undefined);
    } catch (err) {
      if (leaving.current) return; // the next load reattaches
      keep(undefined);
      // The run ended while the page was away and its events are gone: the answer is in the session.
      if (!controller.signal.aborted && runSession !== "" && runEnded(err)) await resume(runSession);
      else if (!controller.signal.aborted && errorReason(err) === "RUN_ON_OTHER_REPLICA")
        setError(
          new Error(
            "The answer is being written on another server that this page could not reach. It will be in the session once it is finished: open the session from the list in a moment.",
          ),
        );
      else if (!controller.signal.aborted) setError(err);
    } finally {
      if (!leaving.current) {
        setRunning(false);
        setReconnecting(false);
        abort.current = undefined;
        void queryClient.invalidateQueries();
      }
    }
  };

  const ask = async () => {
    const message = question.trim();
    if (message === "" || corpus === "") return;
    setQuestion("");
    setError(undefined);
    setRunning(true);
    setTurns((t) => [
      ...t,
      { id: t.length, role: "user", text: message, citations: [] },
      { id: t.length + 1, role: "assistant", text: "", citations: [] },
    ]);
    const controller = new AbortController();
    requestId.current = "";
    // A dropped connection reattaches by itself (WatchRun after the last seq): every event
    // is applied once, in `seq` order (services/client/resumable-run.ts).
    const events = resumableRun(
      agent,
      { sessionId, corpusId: corpus, message, ...(provider ? { options: { provider } } : {}) },
      { signal: controller.signal, onReattach: () => setReconnecting(true) },
    );
    await follow(events, controller, { requestId: "", sessionId, corpusId: corpus, question: message, lastSeq: "0" });
  };

  /**
   * After a reload during an answer: the session's stored turns, then the run replayed from
   * its first event (WatchRun after seq 0) — the partial answer is stored nowhere else, and a
   * replay from the start renders every token exactly once. A run already stored in the
   * session (it finished meanwhile) is shown from there.
   */
  const reattach = async (kept: InFlight) => {
    setCorpusId(kept.corpusId);
    setSessionId(kept.sessionId);
    setRunning(true);
    setReconnecting(true);
    requestId.current = kept.requestId;
    inFlight.current = kept;
    let prior: Message[] = [];
    if (kept.sessionId !== "") {
      try {
        prior = (await agent.getSession({ sessionId: kept.sessionId })).messages;
      } catch {
        prior = []; // a new session is stored with its first turn
      }
    }
    if (prior.some((m) => m.requestId === kept.requestId)) {
      keep(undefined);
      setTurns(toTurns(prior));
      setRunning(false);
      setReconnecting(false);
      return;
    }
    const before = toTurns(prior);
    setTurns([
      ...before,
      { id: before.length, role: "user", text: kept.question, citations: [] },
      { id: before.length + 1, role: "assistant", text: "", citations: [] },
    ]);
    const controller = new AbortController();
    const events = watchRunResumable(agent, kept.requestId, 0n, {
      signal: controller.signal,
      onReattach: () => setReconnecting(true),
    });
    await follow(events, controller, kept);
  };

  useEffect(() => {
    const onLeave = () => {
      leaving.current = true;
    };
    const onBack = () => {
      leaving.current = false;
    };
    window.addEventListener("pagehide", onLeave);
    window.addEventListener("pageshow", onBack);
    return () => {
      window.removeEventListener("pagehide", onLeave);
      window.removeEventListener("pageshow", onBack);
    };
  }, []);

  // Once per page load: an answer that was in progress when the page was left is reattached.
  const reattachOnLoad = useRef<((kept: InFlight) => Promise<void>) | undefined>(reattach);
  useEffect(() => {
    const run = reattachOnLoad.current;
    reattachOnLoad.current = undefined; // StrictMode runs effects twice: reattach once
    const kept = readInFlight();
    if (run && kept) void run(kept);
  }, []);

  const cancel = async () => {
    keep(undefined);
    abort.current?.abort();
    if (requestId.current) await agent.cancelRun({ requestId: requestId.current }).catch(() => undefined);
    setTurns((all) => {
      const last = all[all.length - 1];
      return last && last.role === "assistant" ? [...all.slice(0, -1), { ...last, text: `${last.text} [cancelled]` }] : all;
    });
  };

  return (
    <div className="ask">
      <aside aria-label="Sessions">
        <label htmlFor="corpus">Corpus</label>
        {corpora.isPending ? <Loading what="corpora" /> : null}
        {corpora.error ? <ErrorBox error={corpora.error} onRetry={() => void corpora.refetch()} /> : null}
        <select id="corpus" value={corpus} onChange={(e) => setCorpusId(e.target.value)}>
          {corpora.data?.corpora.map((c) => (
            <option key={c.id} value={c.id}>
              {c.displayName || c.id}
            </option>
          ))}
        </select>
        {corpora.data && corpora.data.corpora.length === 0 ? <Empty>No corpus yet: create one under Corpora.</Empty> : null}
        <label htmlFor="provider">Model provider</label>
        <select id="provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
          <option value="">corpus default</option>
          <option value="extractive">extractive (offline)</option>
          <option value="openai">openai</option>
        </select>
        <h2>Sessions</h2>
        <button
          type="button"
          onClick={() => {
            setSessionId("");
            setTurns([]);
          }}
        >
          New session
        </button>
        {sessions.isPending && corpus ? <Loading what="sessions" /> : null}
        {sessions.error ? <ErrorBox error={sessions.error} /> : null}
        {sessions.data && sessions.data.sessions.length === 0 ? <Empty>No sessions yet.</Empty> : null}
        <ul className="plain sessions">
          {sessions.data?.sessions.map((s) => (
            <li key={s.id}>
              <button
                type="button"
                className="link"
                aria-current={s.id === sessionId ? "true" : undefined}
                onClick={() => void resume(s.id)}
              >
                {s.title || s.id}
              </button>
              <span className="muted"> {when(s.updatedAt)}</span>
            </li>
          ))}
        </ul>
      </aside>
      <Section title="Conversation">
        <div className="turns" aria-live="polite" data-testid="conversation">
          {turns.length === 0 ? <Empty>Ask a question about the corpus; the answer streams in with its sources.</Empty> : null}
          {turns.map((t, i) => (
            <div key={t.id} className={`turn ${t.role}`} data-testid={`turn-${t.role}`}>
              <p>{t.text || (running && i === turns.length - 1 ? "…" : "")}</p>
              {t.citations.length > 0 ? (
                <ol className="citations" aria-label="Sources">
                  {t.citations.map((c) => (
                    <li key={`${c.documentId}:${c.chunkOrdinal}:${c.charStart}`}>
                      <a
                        href={`#passage-${c.documentId}-${c.chunkOrdinal}`}
                        onClick={(e) => {
                          e.preventDefault();
                          setOpen(c);
                        }}
                      >
                        {c.filename || c.documentId} §{c.chunkOrdinal + 1}
                      </a>
                    </li>
                  ))}
                </ol>
              ) : null}
            </div>
          ))}
        </div>
        {reconnecting ? (
          <p role="status" className="muted" data-testid="reconnecting">
            Connection lost — reconnecting to the run…
          </p>
        ) : null}
        {open ? <CitedDocument citation={open} onClose={() => setOpen(undefined)} /> : null}
        {error ? <ErrorBox error={error} /> : null}
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void ask();
          }}
        >
          <label htmlFor="question" className="sr-only">
            Question
          </label>
          <input
            id="question"
            value={question}
            onChange={(e) => setQuestion(e.target.value)}
            placeholder="Ask a question…"
            disabled={running}
          />
          {running ? (
            <button type="button" onClick={() => void cancel()}>
              Cancel
            </button>
          ) : (
            <button type="submit" disabled={question.trim() === "" || corpus === ""}>
              Ask
            </button>
          )}
        </form>
      </Section>
    </div>
  );
}
