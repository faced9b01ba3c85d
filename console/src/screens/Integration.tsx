import { lazy, useEffect, useState } from "react";
import type { Principal } from "../../../services/kernel/context.js";
import { can } from "../can.js";
import { IN } from "./integration/common.js";
import Destinations from "./integration/Destinations.js";
import EdgeAgents from "./integration/EdgeAgents.js";
import Executions from "./integration/Executions.js";
import SenderApps from "./integration/SenderApps.js";

/** The workflow editor (React Flow) loads only when opened: it is most of this screen's weight. */
const Workflows = lazy(() => import("./integration/Workflows.js"));

const TABS = [
  { id: "apps", label: "Sender apps", needs: `${IN}/ListSenderApps` },
  { id: "destinations", label: "Destinations", needs: `${IN}/ListDestinations` },
  { id: "workflows", label: "Workflows", needs: `${IN}/ListWorkflows` },
  { id: "executions", label: "Execution log", needs: `${IN}/ListExecutions` },
  { id: "edge", label: "Edge agents", needs: "/nexus.integration.v1.EdgeService/ListEdges" },
] as const;
type TabId = (typeof TABS)[number]["id"];

function tabFromPath(): TabId {
  const id = window.location.pathname.replace(/^\/console\/integration\/?/, "").split("/")[0] ?? "";
  return (TABS.find((t) => t.id === id)?.id ?? "apps") as TabId;
}

/**
 * Integration (docs/integration.md): sender apps, destinations, workflows with the visual editor
 * and field mapper, the execution log with its live tail and dead letters, edge agents. One menu
 * entry; its sections are sub-pages at /console/integration/<section>.
 */
export default function Integration({ principal }: { principal: Principal }) {
  const [tab, setTab] = useState<TabId>(tabFromPath);
  useEffect(() => {
    const onPop = () => setTab(tabFromPath());
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const visible = TABS.filter((t) => can(principal, t.needs));
  const current = visible.some((t) => t.id === tab) ? tab : (visible[0]?.id ?? "apps");
  return (
    <div>
      <nav aria-label="Integration sections" className="subnav">
        <ul>
          {visible.map((t) => (
            <li key={t.id}>
              <a
                href={`/console/integration/${t.id}`}
                aria-current={t.id === current ? "page" : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  window.history.pushState(null, "", `/console/integration/${t.id}`);
                  setTab(t.id);
                }}
              >
                {t.label}
              </a>
            </li>
          ))}
        </ul>
      </nav>
      <h2 className="sr-only">{TABS.find((t) => t.id === current)?.label}</h2>
      {current === "apps" ? <SenderApps principal={principal} /> : null}
      {current === "destinations" ? <Destinations principal={principal} /> : null}
      {current === "workflows" ? <Workflows principal={principal} /> : null}
      {current === "executions" ? <Executions principal={principal} /> : null}
      {current === "edge" ? <EdgeAgents principal={principal} /> : null}
    </div>
  );
}
