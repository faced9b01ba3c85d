import { AgentService } from "../../gen/nexus/agent/v1/agent_service_pb.js";
import { governanceMigrations } from "../kernel/governance/index.js";
import { defineService } from "../kernel/service/index.js";
import { createAgentParts } from "./agent-parts.js";
import { agentMigrations } from "./migrations.js";
import { agentTenantData } from "./tenant-data.js";

/**
 * The agent service (`nexus.agent.v1.AgentService`): the streaming, grounded Run, sessions and
 * CancelRun. It calls retrieval (Search, corpus settings), metering (quota) and modules (tool
 * calls) over gRPC.
 */
export const agentService = defineService({
  name: "agent",
  apis: [AgentService],
  // The platform's legal-hold and retention tables (kernel governance), which DeleteSession and
  // the retention task read.
  migrations: [agentMigrations, governanceMigrations],
  dataDeleters: [agentTenantData],
  peers: ["retrieval", "metering", "modules"],
  build: (ctx) => createAgentParts(ctx),
});
