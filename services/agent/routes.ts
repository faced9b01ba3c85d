import type { ConnectRouter } from "@connectrpc/connect";
import { AgentService } from "../../gen/nexus/agent/v1/agent_service_pb.js";
import type { AgentHandler } from "./agent-handler.js";

/** Registers the agent's RPCs (every method of `nexus.agent.v1.AgentService`) on a router. */
export function registerAgentRoutes(router: ConnectRouter, handler: AgentHandler): void {
  router.service(AgentService, handler);
}
