import { createClient } from "@connectrpc/connect";
import { useQuery } from "@connectrpc/connect-query";
import { useState } from "react";
import { type EdgeAgent, EdgeService } from "../../../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../../../gen/nexus/integration/v1/integration_service_pb.js";
import type { Principal } from "../../../../services/kernel/context.js";
import { transport } from "../../api.js";
import { can } from "../../can.js";
import { Empty, ErrorBox, Loading, Secret, Section, when } from "../../ui.js";
import { IN, useAct } from "./common.js";

const edges = createClient(EdgeService, transport);
const ED = "/nexus.integration.v1.EdgeService";

/** "3 s", "4 min", "2 h": the age of an edge's oldest queued message. */
function age(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function EdgeRow({ edge, principal, appName }: { edge: EdgeAgent; principal: Principal; appName: (id: string) => string }) {
  const { error, act, busy } = useAct();
  const [adding, setAdding] = useState("");
  const revoked = edge.revokeTime !== undefined;
  const s = edge.status;
  const admin = !revoked && can(principal, `${ED}/AssignEdgeApps`);
  const assignable = useQuery(IntegrationService.method.listSenderApps, {}, { enabled: admin });
  const others = (assignable.data?.apps ?? []).filter((a) => !edge.appIds.includes(a.appId));
  return (
    <li className="item" data-testid={`edge-${edge.name}`}>
      <div className="row">
        <strong>{edge.name}</strong> <code>{edge.edgeId}</code>
        <span className="muted">token {edge.tokenPrefix}…</span>
        <span data-testid="edge-state">{revoked ? `revoked ${when(edge.revokeTime)}` : "active"}</span>
        <span className="muted">registered {when(edge.createTime)}</span>
      </div>
      <p className="muted" data-testid="edge-status">
        Last seen {edge.lastSeenTime ? when(edge.lastSeenTime) : "never"}
        {s
          ? ` · last sync ${s.lastSyncTime ? when(s.lastSyncTime) : "never"} · queue ${String(s.queueDepth)} message(s)${
              s.queueDepth > 0n ? `, oldest ${age(s.oldestQueuedAgeSeconds)}` : ""
            } · forwarded ${String(s.forwardedTotal)}, failed ${String(s.failedTotal)}`
          : " · no status reported yet"}
      </p>
      <div className="row">
        <span>Apps:</span>
        {edge.appIds.length === 0 ? <span className="muted">none (it accepts nothing)</span> : null}
        {edge.appIds.map((id) => (
          <span key={id}>
            {appName(id)}{" "}
            {admin && can(principal, `${ED}/UnassignEdgeApps`) ? (
              <button
                type="button"
                className="link"
                disabled={busy}
                onClick={() => void act(() => edges.unassignEdgeApps({ edgeId: edge.edgeId, appIds: [id] }))}
              >
                Unassign
                <span className="sr-only">
                  {" "}
                  {appName(id)} from {edge.name}
                </span>
              </button>
            ) : null}
          </span>
        ))}
      </div>
      {admin ? (
        <div className="row">
          {others.length > 0 ? (
            <form
              className="row"
              onSubmit={(e) => {
                e.preventDefault();
                if (adding)
                  void act(() => edges.assignEdgeApps({ edgeId: edge.edgeId, appIds: [adding] })).then((ok) => ok && setAdding(""));
              }}
            >
              <label htmlFor={`edge-${edge.edgeId}-app`}>Assign app to {edge.name}</label>
              <select id={`edge-${edge.edgeId}-app`} value={adding} onChange={(e) => setAdding(e.target.value)}>
                <option value="">Choose an app…</option>
                {others.map((a) => (
                  <option key={a.appId} value={a.appId}>
                    {a.name}
                  </option>
                ))}
              </select>
              <button type="submit" disabled={busy || !adding}>
                Assign<span className="sr-only"> to {edge.name}</span>
              </button>
            </form>
          ) : null}
          {can(principal, `${ED}/RevokeEdge`) ? (
            <button
              type="button"
              className="danger"
              disabled={busy}
              onClick={() => {
                if (window.confirm(`Revoke ${edge.name}? Its token stops working at once; messages still queued there are not forwarded.`))
                  void act(() => edges.revokeEdge({ edgeId: edge.edgeId }));
              }}
            >
              Revoke<span className="sr-only"> {edge.name}</span>
            </button>
          ) : null}
        </div>
      ) : null}
      {error ? <ErrorBox error={error} /> : null}
    </li>
  );
}

/**
 * Edge agents (docs/edge.md): the `nexus edge` agents registered with the hub — their state, what
 * they reported at their last sync (queue, forwarded, failed), the sender apps each may send for.
 * Admins register agents (the token is shown once), assign and unassign apps, and revoke them.
 */
export default function EdgeAgents({ principal }: { principal: Principal }) {
  const list = useQuery(EdgeService.method.listEdges, { includeRevoked: true });
  const apps = useQuery(IntegrationService.method.listSenderApps, {}, { enabled: can(principal, `${IN}/ListSenderApps`) });
  const appName = (id: string) => apps.data?.apps.find((a) => a.appId === id)?.name ?? id;
  const { error, act, busy } = useAct();
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<string[]>([]);
  const [token, setToken] = useState<{ label: string; value: string }>();
  return (
    <div>
      {can(principal, `${ED}/RegisterEdge`) ? (
        <Section title="Register an edge agent">
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void act(async () => {
                const res = await edges.registerEdge({ name, appIds: chosen });
                setToken({ label: `edge token of ${name} (pass it to nexus edge --token)`, value: res.edgeToken });
                setName("");
                setChosen([]);
              });
            }}
          >
            <div className="row">
              <label htmlFor="edge-name">Name</label>
              <input id="edge-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
            </div>
            {apps.data && apps.data.apps.length > 0 ? (
              <fieldset className="fields">
                <legend>Sender apps it may send for</legend>
                {apps.data.apps.map((a) => (
                  <label key={a.appId}>
                    <input
                      type="checkbox"
                      checked={chosen.includes(a.appId)}
                      onChange={(e) => setChosen((c) => (e.target.checked ? [...c, a.appId] : c.filter((x) => x !== a.appId)))}
                    />{" "}
                    {a.name}
                  </label>
                ))}
              </fieldset>
            ) : null}
            <button type="submit" disabled={busy}>
              Register edge agent
            </button>
          </form>
          {error ? <ErrorBox error={error} /> : null}
        </Section>
      ) : null}
      {token ? <Secret label={token.label} secret={token.value} onDone={() => setToken(undefined)} /> : null}
      <Section title="Edge agents">
        <p className="muted">
          <code>nexus edge</code> agents accept ingress beside your applications, check app keys locally and forward messages here. Each
          accepts only the apps assigned to it; rotating an app key stops it at every agent at its next sync.
        </p>
        {list.isPending ? <Loading what="edge agents" /> : null}
        {list.error ? <ErrorBox error={list.error} onRetry={() => void list.refetch()} /> : null}
        {list.data && list.data.edges.length === 0 ? <Empty>No edge agents registered.</Empty> : null}
        {list.data && list.data.edges.length > 0 ? (
          <ul className="plain">
            {list.data.edges.map((e) => (
              <EdgeRow key={`${e.edgeId}-${e.appIds.join(",")}-${e.revokeTime ? 1 : 0}`} edge={e} principal={principal} appName={appName} />
            ))}
          </ul>
        ) : null}
      </Section>
    </div>
  );
}
