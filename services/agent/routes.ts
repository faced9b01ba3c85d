import { AgentService } from "../../gen/nexus/agent/v1/agent_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { AgentHandler } from "./agent-handler.js";

/** nexus.agent.v1.AgentService (every method) served by its handler. */
export function agentRoutes(handler: AgentHandler): ApiHandler {
  return handle(AgentService, handler);
}
