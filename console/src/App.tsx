import { useQuery } from "@connectrpc/connect-query";
import { useQueryClient } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useState } from "react";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { isSignedOut, signOut } from "./api.js";
import { can, principalOf } from "./can.js";
import { Overview } from "./screens/Overview.js";
import { SignIn } from "./screens/SignIn.js";
import { ErrorBox, Loading } from "./ui.js";

const Ask = lazy(() => import("./screens/Ask.js"));
const Corpora = lazy(() => import("./screens/Corpora.js"));
const Keys = lazy(() => import("./screens/Keys.js"));
const Usage = lazy(() => import("./screens/Usage.js"));
const Audit = lazy(() => import("./screens/Audit.js"));
const DeadLetters = lazy(() => import("./screens/DeadLetters.js"));
const Tenants = lazy(() => import("./screens/Tenants.js"));
const Integration = lazy(() => import("./screens/Integration.js"));

/** Screens, the procedure that decides whether the principal sees each, in menu order. */
const SCREENS = [
  { id: "overview", label: "Overview", needs: "/nexus.auth.v1.AuthService/WhoAmI" },
  { id: "ask", label: "Ask", needs: "/nexus.agent.v1.AgentService/Run" },
  { id: "corpora", label: "Corpora & documents", needs: "/nexus.retrieval.v1.RetrievalService/ListCorpora" },
  { id: "tenants", label: "Tenants & plans", needs: "/nexus.auth.v1.AuthService/ListTenants" },
  { id: "keys", label: "Keys", needs: "/nexus.auth.v1.AuthService/ListApiKeys" },
  { id: "usage", label: "Usage & quotas", needs: "/nexus.metering.v1.MeteringService/GetUsageHistory" },
  { id: "audit", label: "Audit log", needs: "/nexus.audit.v1.AuditService/ListAuditEvents" },
  { id: "dead-letters", label: "Dead letters", needs: "/nexus.ingestion.v1.IngestionService/ListDeadLetters" },
  { id: "integration", label: "Integration", needs: "/nexus.integration.v1.IntegrationService/ListExecutions" },
] as const;
type ScreenId = (typeof SCREENS)[number]["id"];

function screenFromPath(): ScreenId {
  const id = window.location.pathname.replace(/^\/console\/?/, "").split("/")[0] || "overview";
  return (SCREENS.find((s) => s.id === id)?.id ?? "overview") as ScreenId;
}

export function App() {
  const queryClient = useQueryClient();
  const whoami = useQuery(AuthService.method.whoAmI, {}, { retry: false, staleTime: 60_000 });
  const [screen, setScreen] = useState<ScreenId>(screenFromPath);
  useEffect(() => {
    const onPop = () => setScreen(screenFromPath());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  useEffect(() => {
    document.title = `${SCREENS.find((s) => s.id === screen)?.label ?? "Nexus"} · Nexus console`;
  }, [screen]);

  if (whoami.isPending) return <Loading what="your session" />;
  if (whoami.error && isSignedOut(whoami.error)) {
    return <SignIn onSignedIn={() => void queryClient.resetQueries()} ended={document.cookie.includes("nexus_csrf=")} />;
  }
  if (whoami.error) {
    return (
      <main className="center">
        <ErrorBox error={whoami.error} onRetry={() => void whoami.refetch()} />
      </main>
    );
  }
  const principal = principalOf(whoami.data.principal!);
  const visible = SCREENS.filter((s) => can(principal, s.needs));
  const go = (id: ScreenId) => {
    window.history.pushState(null, "", `/console/${id === "overview" ? "" : id}`);
    setScreen(id);
  };
  const current = visible.some((s) => s.id === screen) ? screen : "overview";
  const leave = async () => {
    await signOut();
    queryClient.clear();
    await queryClient.resetQueries();
    window.location.assign("/console/");
  };
  const who =
    principal.kind === "platform"
      ? `${principal.name} · platform operator`
      : `${principal.name} · ${principal.tenantSlug} · ${principal.role}`;
  return (
    <div className="layout">
      <header>
        <span className="brand">Nexus</span>
        <nav aria-label="Screens">
          <ul>
            {visible.map((s) => (
              <li key={s.id}>
                <a
                  href={`/console/${s.id === "overview" ? "" : s.id}`}
                  aria-current={s.id === current ? "page" : undefined}
                  onClick={(e) => {
                    e.preventDefault();
                    go(s.id);
                  }}
                >
                  {s.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who" data-testid="who">
          {who}
        </span>
        <button type="button" onClick={() => void leave()}>
          Sign out
        </button>
      </header>
      <main id="main">
        <h1>{SCREENS.find((s) => s.id === current)?.label}</h1>
        <Suspense fallback={<Loading what="the screen" />}>
          {current === "overview" ? <Overview principal={principal} /> : null}
          {current === "ask" ? <Ask /> : null}
          {current === "corpora" ? <Corpora principal={principal} /> : null}
          {current === "keys" ? <Keys principal={principal} /> : null}
          {current === "usage" ? <Usage principal={principal} /> : null}
          {current === "audit" ? <Audit principal={principal} /> : null}
          {current === "dead-letters" ? <DeadLetters /> : null}
          {current === "tenants" ? <Tenants /> : null}
          {current === "integration" ? <Integration principal={principal} /> : null}
        </Suspense>
      </main>
    </div>
  );
}
