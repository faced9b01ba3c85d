import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { Plan, TenantStatus } from "../../../gen/nexus/auth/v1/tenant_pb.js";
import { auth } from "../api.js";
import { Empty, ErrorBox, Loading, Section, when } from "../ui.js";

const PLANS: [Plan, string][] = [
  [Plan.FREE, "free"],
  [Plan.PRO, "pro"],
  [Plan.ENTERPRISE, "enterprise"],
];

/** Tenants and plans (platform operators): create, change plan, suspend and resume. */
export default function Tenants() {
  const queryClient = useQueryClient();
  const [pages, setPages] = useState<string[]>([""]);
  const tenants = useQuery(AuthService.method.listTenants, { pageSize: 50, pageToken: pages[pages.length - 1] ?? "" });
  const [slug, setSlug] = useState("");
  const [name, setName] = useState("");
  const [plan, setPlan] = useState<Plan>(Plan.FREE);
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
      <Section title="Create a tenant">
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              await auth.createTenant({ slug, displayName: name || slug, plan });
              setSlug("");
              setName("");
            });
          }}
        >
          <label htmlFor="tenant-slug">Slug</label>
          <input
            id="tenant-slug"
            value={slug}
            onChange={(e) => setSlug(e.target.value)}
            required
            pattern="[a-z0-9]([a-z0-9\-]*[a-z0-9])?"
          />
          <label htmlFor="tenant-name">Display name</label>
          <input id="tenant-name" value={name} onChange={(e) => setName(e.target.value)} />
          <label htmlFor="tenant-plan">Plan</label>
          <select id="tenant-plan" value={plan} onChange={(e) => setPlan(Number(e.target.value) as Plan)}>
            {PLANS.map(([v, n]) => (
              <option key={n} value={v}>
                {n}
              </option>
            ))}
          </select>
          <button type="submit">Create tenant</button>
        </form>
        {error ? <ErrorBox error={error} /> : null}
      </Section>
      <Section title="Tenants">
        {tenants.isPending ? <Loading what="tenants" /> : null}
        {tenants.error ? <ErrorBox error={tenants.error} onRetry={() => void tenants.refetch()} /> : null}
        {tenants.data && tenants.data.tenants.length === 0 ? <Empty>No tenants yet.</Empty> : null}
        {tenants.data && tenants.data.tenants.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th scope="col">Tenant</th>
                <th scope="col">Plan</th>
                <th scope="col">Status</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {tenants.data.tenants.map((t) => {
                const suspended = t.status === TenantStatus.SUSPENDED;
                return (
                  <tr key={t.id} data-testid={`tenant-${t.slug}`}>
                    <td>
                      {t.displayName} <span className="muted">({t.slug})</span>
                    </td>
                    <td>
                      <label className="sr-only" htmlFor={`plan-${t.id}`}>
                        Plan of {t.slug}
                      </label>
                      <select
                        id={`plan-${t.id}`}
                        value={t.plan}
                        onChange={(e) => void act(() => auth.setPlan({ tenantId: t.id, plan: Number(e.target.value) as Plan }))}
                      >
                        {PLANS.map(([v, n]) => (
                          <option key={n} value={v}>
                            {n}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td data-testid="tenant-status">
                      {suspended ? `suspended${t.suspensionReason ? `: ${t.suspensionReason}` : ""}` : "active"}
                    </td>
                    <td>{when(t.createdAt)}</td>
                    <td>
                      {suspended ? (
                        <button type="button" onClick={() => void act(() => auth.resumeTenant({ tenantId: t.id }))}>
                          Resume<span className="sr-only"> {t.slug}</span>
                        </button>
                      ) : (
                        <button
                          type="button"
                          className="danger"
                          onClick={() => {
                            const reason = window.prompt(`Suspend ${t.slug}? Its keys stop working at once. Reason:`, "");
                            if (reason !== null) void act(() => auth.suspendTenant({ tenantId: t.id, reason }));
                          }}
                        >
                          Suspend<span className="sr-only"> {t.slug}</span>
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        ) : null}
        <div className="row">
          <button type="button" disabled={pages.length <= 1} onClick={() => setPages((p) => p.slice(0, -1))}>
            Previous
          </button>
          <button
            type="button"
            disabled={!tenants.data?.nextPageToken}
            onClick={() => setPages((p) => [...p, tenants.data!.nextPageToken])}
          >
            Next
          </button>
        </div>
      </Section>
    </div>
  );
}
