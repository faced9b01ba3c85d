export type { HttpRoute } from "../server/service-module.js";
export {
  type ApiHandler,
  type ConsumerDefaults,
  type ConsumerSpec,
  defineService,
  handle,
  type Peers,
  type PeriodicTask,
  type SchemaMigrations,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceParts,
  type ServiceRole,
  type ServiceSpec,
} from "./define-service.js";
export { hostedRoles, type MountedService, migrateSchemas, migrateService, mountService } from "./mount-service.js";
export { type TenantDataDeleter, type TenantRows, tenantRowsDeleter } from "./tenant-data.js";
