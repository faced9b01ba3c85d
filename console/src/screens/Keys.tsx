import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { ApiKeyStatus, Role } from "../../../gen/nexus/auth/v1/api_key_pb.js";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import type { Principal } from "../../../services/kernel/context.js";
import { auth } from "../api.js";
import { Empty, ErrorBox, Loading, Secret, Section, when } from "../ui.js";

const STATUS: Record<ApiKeyStatus, string> = {
  [ApiKeyStatus.UNSPECIFIED]: "unknown",
  [ApiKeyStatus.ACTIVE]: "active",
  [ApiKeyStatus.ROTATING]: "rotating",
  [ApiKeyStatus.REVOKED]: "revoked",
  [ApiKeyStatus.EXPIRED]: "expired",
  [ApiKeyStatus.INACTIVE]: "inactive",
};
const ROLE_NAMES: Record<Role, string> = {
  [Role.UNSPECIFIED]: "—",
  [Role.OWNER]: "owner",
  [Role.ADMIN]: "admin",
  [Role.EDITOR]: "editor",
  [Role.VIEWER]: "viewer",
};

export default function Keys({ principal }: { principal: Principal }) {
  const queryClient = useQueryClient();
  const platform = principal.kind === "platform";
  const keys = useQuery(AuthService.method.listApiKeys, { pageSize: 200, platformKeys: platform });
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>(Role.VIEWER);
  const [secret, setSecret] = useState("");
  const [grace, setGrace] = useState("86400");
  const [error, setError] = useState<unknown>();
  const act = async (f: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await f();
      await queryClient.invalidateQueries();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div>
      <Section title={platform ? "Create a platform key" : "Create a key"}>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              const res = await auth.createApiKey(platform ? { name, platformKey: true } : { name, role });
              setSecret(res.plaintextKey);
              setName("");
            });
          }}
        >
          <label htmlFor="key-name">Name</label>
          <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
          {platform ? null : (
            <>
              <label htmlFor="key-role">Role</label>
              <select id="key-role" value={role} onChange={(e) => setRole(Number(e.target.value) as Role)}>
                <option value={Role.VIEWER}>viewer</option>
                <option value={Role.EDITOR}>editor</option>
                <option value={Role.ADMIN}>admin</option>
                {principal.kind === "tenant" && principal.role === "owner" ? <option value={Role.OWNER}>owner</option> : null}
              </select>
            </>
          )}
          <button type="submit">Create key</button>
        </form>
        {secret ? <Secret secret={secret} onDone={() => setSecret("")} /> : null}
        {error ? <ErrorBox error={error} /> : null}
      </Section>
      <Section
        title="Keys"
        actions={
          <span className="row">
            <label htmlFor="grace">Rotation grace</label>
            <select id="grace" value={grace} onChange={(e) => setGrace(e.target.value)}>
              <option value="0">none (old key stops at once)</option>
              <option value="3600">1 hour</option>
              <option value="86400">24 hours</option>
              <option value="604800">7 days</option>
            </select>
          </span>
        }
      >
        {keys.isPending ? <Loading what="keys" /> : null}
        {keys.error ? <ErrorBox error={keys.error} onRetry={() => void keys.refetch()} /> : null}
        {keys.data && keys.data.apiKeys.length === 0 ? <Empty>No keys.</Empty> : null}
        {keys.data && keys.data.apiKeys.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Key</th>
                <th scope="col">Role</th>
                <th scope="col">Status</th>
                <th scope="col">Last used</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {keys.data.apiKeys.map((k) => {
                const live = k.status === ApiKeyStatus.ACTIVE || k.status === ApiKeyStatus.ROTATING;
                const self = k.id === principal.keyId;
                return (
                  <tr key={k.id} data-testid={`key-${k.name}`}>
                    <td>
                      {k.name}
                      {self ? <span className="muted"> (this session)</span> : null}
                    </td>
                    <td>
                      <code>{k.displayPrefix}…</code>
                    </td>
                    <td>{ROLE_NAMES[k.role]}</td>
                    <td data-testid="key-status">{STATUS[k.status]}</td>
                    <td>{when(k.lastUsedAt)}</td>
                    <td>
                      {live && !self ? (
                        <>
                          <button
                            type="button"
                            onClick={() =>
                              void act(async () => {
                                const res = await auth.rotateApiKey({ keyId: k.id, gracePeriod: { seconds: BigInt(grace), nanos: 0 } });
                                setSecret(res.plaintextKey);
                              })
                            }
                          >
                            Rotate<span className="sr-only"> {k.name}</span>
                          </button>{" "}
                          <button
                            type="button"
                            className="danger"
                            onClick={() => {
                              if (window.confirm(`Revoke ${k.name}? Every client using it stops working at once.`)) {
                                void act(() => auth.revokeApiKey({ keyId: k.id, reason: "revoked in the console" }));
                              }
                            }}
                          >
                            Revoke<span className="sr-only"> {k.name}</span>
                          </button>
                        </>
                      ) : null}
                      {k.status === ApiKeyStatus.INACTIVE ? (
                        <button type="button" onClick={() => void act(() => auth.reactivateApiKey({ keyId: k.id }))}>
                          Reactivate<span className="sr-only"> {k.name}</span>
                        </button>
                      ) : null}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
      </Section>
    </div>
  );
}
