import { ModulesService } from "../../gen/nexus/modules/v1/modules_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { modulesMigrations } from "./migrations.js";
import { createModulesParts } from "./modules-parts.js";
import { modulesTenantData } from "./tenant-data.js";

/**
 * The modules service (`nexus.modules.v1.ModulesService`): agent tools as modules — a
 * tenant's versioned registry with sandboxed execution (QuickJS), generated tests, approval
 * gates, activation and rollback, and the credential store. The agent calls its CallTool.
 */
export const modulesService = defineService({
  name: "modules",
  apis: [ModulesService],
  migrations: [modulesMigrations],
  dataDeleters: [modulesTenantData],
  build: (ctx) => createModulesParts(ctx),
});
