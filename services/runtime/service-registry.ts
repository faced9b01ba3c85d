import type { ServiceName } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import type { ServiceModule } from "../kernel/server/service-module.js";
import { build as buildAgent, migrateAgent } from "../agent/server.js";
import { build as buildAudit, migrateAudit } from "../audit/server.js";
import { build as buildAuth, migrateAuth } from "../auth/server.js";
import { build as buildIngestion, migrate as migrateIngestion } from "../knowledge/ingestion/server.js";
import { build as buildMetering, migrateMetering } from "../metering/server.js";
import { build as buildRetrieval, migrate as migrateRetrieval } from "../knowledge/retrieval/server.js";
import type { ServiceDeps } from "./service-deps.js";

/** How the runtime builds and migrates one deployable service. */
export interface ServiceEntry {
  /** The modules this service mounts (metering also hosts the audit API). */
  build(deps: ServiceDeps): ServiceModule[];
  /** Applies the service's own schema migrations (forward-only, advisory-locked). */
  migrate(db: Database): Promise<void>;
}

const noMigrations = async (): Promise<void> => {};

/**
 * Every deployable service, by the name `nexus serve --service` and NEXUS_SERVICES use.
 * The audit API is served by the metering process, which consumes the same event stream.
 */
export const SERVICE_REGISTRY: Readonly<Record<ServiceName, ServiceEntry>> = {
  auth: { build: (d) => [buildAuth(d)], migrate: async (db) => void (await migrateAuth(db)) },
  metering: {
    build: (d) => [buildMetering(d), buildAudit(d)],
    migrate: async (db) => {
      await migrateMetering(db);
      await migrateAudit(db);
    },
  },
  ingestion: { build: (d) => [buildIngestion(d)], migrate: migrateIngestion },
  retrieval: { build: (d) => [buildRetrieval(d)], migrate: migrateRetrieval },
  agent: { build: (d) => [buildAgent(d)], migrate: migrateAgent },
};
