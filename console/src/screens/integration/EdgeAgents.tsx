import { useQuery } from "@connectrpc/connect-query";
import { EdgeService } from "../../../../gen/nexus/integration/v1/edge_service_pb.js";
import { Empty, ErrorBox, Loading, Section, when } from "../../ui.js";

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/**
 * Edge agents (docs/edge.md): what the API offers today is GetEdgeConfig — the configuration every
 * `nexus edge` agent of the tenant syncs (its sender apps, each with the digest of its current
 * key). Registering, listing and revoking agents are not in the API yet.
 */
export default function EdgeAgents() {
  const config = useQuery(EdgeService.method.getEdgeConfig, {});
  return (
    <Section title="Edge agent configuration">
      <p className="muted">
        <code>nexus edge</code> agents accept ingress beside your applications, check app keys against these digests and forward messages
        here. Agents are not registered with the hub yet, so they cannot be listed or revoked here; rotating an app key stops it at every
        agent at its next sync.
      </p>
      {config.isPending ? <Loading what="the edge configuration" /> : null}
      {config.error ? <ErrorBox error={config.error} onRetry={() => void config.refetch()} /> : null}
      {config.data && config.data.apps.length === 0 ? <Empty>No sender apps: an agent would accept nothing.</Empty> : null}
      {config.data && config.data.apps.length > 0 ? (
        <table>
          <caption className="sr-only">Sender apps an edge agent accepts</caption>
          <thead>
            <tr>
              <th scope="col">App</th>
              <th scope="col">Key digest (SHA-256)</th>
              <th scope="col">Payloads</th>
            </tr>
          </thead>
          <tbody>
            {config.data.apps.map((a) => (
              <tr key={a.appId}>
                <td>
                  <code>{a.appId}</code>
                </td>
                <td>
                  <code>{hex(a.keyDigest).slice(0, 16)}…</code>
                </td>
                <td>{a.encryptionRequired ? "encrypted (opened by the hub)" : "plain JSON"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
      {config.data ? <p className="muted">Read at {when(config.data.syncedAt)}.</p> : null}
    </Section>
  );
}
