import { tenantRowsDeleter } from "../kernel/service/index.js";

/** The agent's part of tenant offboarding: every session and its messages. Nothing is kept. */
export const agentTenantData = tenantRowsDeleter("agent", [{ table: "agent.messages" }, { table: "agent.sessions" }]);
