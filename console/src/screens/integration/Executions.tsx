import { useQuery } from "@connectrpc/connect-query";
import { useEffect, useState } from "react";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import { type Execution, ExecutionStatus } from "../../../../gen/nexus/integration/v1/resources_pb.js";
import type { Principal } from "../../../../services/kernel/context.js";
import { can } from "../../can.js";
import { Empty, ErrorBox, Loading, Section, when } from "../../ui.js";
import { IN, integration, useAct } from "./common.js";

const STATUSES: ReadonlyArray<[ExecutionStatus, string]> = [
  [ExecutionStatus.UNSPECIFIED, "any"],
  [ExecutionStatus.PENDING, "pending"],
  [ExecutionStatus.SUCCEEDED, "succeeded"],
  [ExecutionStatus.RETRYING, "retrying"],
  [ExecutionStatus.DEAD_LETTERED, "dead-lettered"],
  [ExecutionStatus.SKIPPED, "skipped"],
  [ExecutionStatus.FAILED, "failed"],
];
const statusName = (s: ExecutionStatus) => STATUSES.find(([v]) => v === s)?.[1] ?? "?";

/** Execution entries as a table: message, workflow version, destination or step, status, attempts, latency, error. */
function ExecutionTable({ rows, names, caption }: { rows: Execution[]; names: Map<string, string>; caption: string }) {
  return (
    <table data-testid={caption === "Live tail" ? "tail" : "executions"}>
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          <th scope="col">Time</th>
          <th scope="col">Message</th>
          <th scope="col">Workflow</th>
          <th scope="col">Destination / step</th>
          <th scope="col">Status</th>
          <th scope="col">Attempts</th>
          <th scope="col">Latency</th>
          <th scope="col">Error</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((e) => (
          <tr key={e.executionId} className={`st-${statusName(e.status)}`}>
            <td>{when(e.updateTime)}</td>
            <td>
              <code>{e.messageId}</code>
            </td>
            <td>
              {names.get(e.workflowId) ?? e.workflowId} v{e.workflowVersion}
            </td>
            <td>{e.step ? `step ${e.step}` : (names.get(e.destinationId) ?? e.destinationId)}</td>
            <td data-testid="execution-status">{statusName(e.status)}</td>
            <td>{e.attempts}</td>
            <td>{e.latencyMs} ms</td>
            <td className="error-text">{e.error}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The live tail: TailExecutions (server stream) until stopped; an entry updated again replaces its row. */
function LiveTail({ workflowId, names }: { workflowId: string; names: Map<string, string> }) {
  const [rows, setRows] = useState<Execution[]>([]);
  const [error, setError] = useState<unknown>();
  const [state, setState] = useState<"connecting" | "live" | "stopped">("connecting");
  const [run, setRun] = useState(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: a new `run` (Reconnect) opens the stream again
  useEffect(() => {
    const abort = new AbortController();
    setError(undefined);
    setState("connecting");
    (async () => {
      try {
        const stream = integration.tailExecutions({ workflowId }, { signal: abort.signal });
        setState("live");
        for await (const item of stream) {
          const e = item.execution;
          if (!e) continue;
          setRows((all) => [e, ...all.filter((x) => x.executionId !== e.executionId)].slice(0, 200));
        }
        setState("stopped");
      } catch (err) {
        if (!abort.signal.aborted) {
          setError(err);
          setState("stopped");
        }
      }
    })();
    return () => abort.abort();
  }, [workflowId, run]);
  return (
    <div>
      <p className="row" role="status" aria-live="polite">
        <span className={`dot ${state === "live" ? "ok" : "bad"}`} aria-hidden="true" />
        {state === "live" ? "Live: new entries appear as they are written." : state === "connecting" ? "Connecting…" : "The tail stopped."}
        {state === "stopped" ? (
          <button type="button" onClick={() => setRun(run + 1)}>
            Reconnect
          </button>
        ) : null}
      </p>
      {error ? <ErrorBox error={error} onRetry={() => setRun(run + 1)} /> : null}
      {rows.length === 0 ? (
        <Empty>Nothing written since the tail started.</Empty>
      ) : (
        <ExecutionTable rows={rows} names={names} caption="Live tail" />
      )}
    </div>
  );
}

function DeadLetters({ principal, names }: { principal: Principal; names: Map<string, string> }) {
  const list = useQuery(IntegrationService.method.listDeadLetters, { pageSize: 200 });
  const { error, act } = useAct();
  const [replayed, setReplayed] = useState("");
  return (
    <Section title="Dead letters">
      {list.isPending ? <Loading what="dead letters" /> : null}
      {list.error ? <ErrorBox error={list.error} onRetry={() => void list.refetch()} /> : null}
      {list.data && list.data.deadLetters.length === 0 ? (
        <Empty>No dead letters: every delivery arrived or is still being retried.</Empty>
      ) : null}
      {list.data && list.data.deadLetters.length > 0 ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Parked</th>
              <th scope="col">Message</th>
              <th scope="col">Workflow</th>
              <th scope="col">Destination</th>
              <th scope="col">Attempts</th>
              <th scope="col">Error</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data.deadLetters.map((d) => (
              <tr key={String(d.sequence)}>
                <td>{when(d.deadLetteredAt)}</td>
                <td>
                  <code>{d.messageId}</code>
                </td>
                <td>{names.get(d.workflowId) ?? d.workflowId}</td>
                <td>{names.get(d.destinationId) ?? d.destinationId}</td>
                <td>{d.attempts}</td>
                <td className="error-text">{d.error}</td>
                <td>
                  {can(principal, `${IN}/ReplayDeadLetter`) ? (
                    <button
                      type="button"
                      onClick={() =>
                        void act(async () => {
                          const res = await integration.replayDeadLetter({ sequence: d.sequence });
                          setReplayed(`Message ${res.messageId} sent again.`);
                        })
                      }
                    >
                      Replay<span className="sr-only"> message {d.messageId}</span>
                    </button>
                  ) : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {replayed ? (
        <p className="ok" role="status">
          {replayed}
        </p>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
    </Section>
  );
}

/** The execution log: filtered pages, the live tail, dead letters with replay. */
export default function Executions({ principal }: { principal: Principal }) {
  const workflows = useQuery(IntegrationService.method.listWorkflows, {});
  const destinations = useQuery(IntegrationService.method.listDestinations, {});
  const [workflowId, setWorkflowId] = useState("");
  const [destinationId, setDestinationId] = useState("");
  const [status, setStatus] = useState<ExecutionStatus>(ExecutionStatus.UNSPECIFIED);
  const [messageId, setMessageId] = useState("");
  const [pageToken, setPageToken] = useState("");
  const [tail, setTail] = useState(false);
  const filter = { workflowId, destinationId, status, messageId: messageId.trim(), pageSize: 50, pageToken };
  const page = useQuery(IntegrationService.method.listExecutions, filter, { enabled: !tail });
  const names = new Map<string, string>([
    ...(workflows.data?.workflows.map((w) => [w.workflowId, w.name] as [string, string]) ?? []),
    ...(destinations.data?.destinations.map((d) => [d.destinationId, d.name] as [string, string]) ?? []),
  ]);
  const reset = () => setPageToken("");
  return (
    <div>
      <Section title="Execution log">
        <form className="row" onSubmit={(e) => e.preventDefault()} aria-label="Filters">
          <label htmlFor="ex-wf">Workflow</label>
          <select
            id="ex-wf"
            value={workflowId}
            onChange={(e) => {
              setWorkflowId(e.target.value);
              reset();
            }}
          >
            <option value="">all</option>
            {workflows.data?.workflows.map((w) => (
              <option key={w.workflowId} value={w.workflowId}>
                {w.name}
              </option>
            ))}
          </select>
          <label htmlFor="ex-dest">Destination</label>
          <select
            id="ex-dest"
            value={destinationId}
            disabled={tail}
            onChange={(e) => {
              setDestinationId(e.target.value);
              reset();
            }}
          >
            <option value="">all</option>
            {destinations.data?.destinations.map((d) => (
              <option key={d.destinationId} value={d.destinationId}>
                {d.name}
              </option>
            ))}
          </select>
          <label htmlFor="ex-status">Status</label>
          <select
            id="ex-status"
            value={status}
            disabled={tail}
            onChange={(e) => {
              setStatus(Number(e.target.value) as ExecutionStatus);
              reset();
            }}
          >
            {STATUSES.map(([v, label]) => (
              <option key={v} value={v}>
                {label}
              </option>
            ))}
          </select>
          <label htmlFor="ex-msg">Message id</label>
          <input
            id="ex-msg"
            value={messageId}
            disabled={tail}
            onChange={(e) => {
              setMessageId(e.target.value);
              reset();
            }}
          />
          {can(principal, `${IN}/TailExecutions`) ? (
            <button type="button" aria-pressed={tail} onClick={() => setTail(!tail)}>
              {tail ? "Stop live tail" : "Live tail"}
            </button>
          ) : null}
        </form>
        {tail ? (
          <LiveTail workflowId={workflowId} names={names} />
        ) : (
          <>
            {page.isPending ? <Loading what="the execution log" /> : null}
            {page.error ? <ErrorBox error={page.error} onRetry={() => void page.refetch()} /> : null}
            {page.data && page.data.executions.length === 0 ? <Empty>No entries match.</Empty> : null}
            {page.data && page.data.executions.length > 0 ? (
              <ExecutionTable rows={page.data.executions} names={names} caption="Execution log" />
            ) : null}
            <div className="row">
              {pageToken ? (
                <button type="button" onClick={reset}>
                  First page
                </button>
              ) : null}
              {page.data?.nextPageToken ? (
                <button type="button" onClick={() => setPageToken(page.data.nextPageToken)}>
                  Older entries
                </button>
              ) : null}
              <button type="button" onClick={() => void page.refetch()}>
                Refresh
              </button>
            </div>
          </>
        )}
      </Section>
      {can(principal, `${IN}/ListDeadLetters`) ? <DeadLetters principal={principal} names={names} /> : null}
    </div>
  );
}
