export {
  defineService,
  handle,
  type ApiHandler,
  type ConsumerDefaults,
  type ConsumerSpec,
  type PeriodicTask,
  type Peers,
  type SchemaMigrations,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceParts,
  type ServiceRole,
  type ServiceSpec,
} from "./define-service.js";
export { hostedRoles, migrateSchemas, migrateService, mountService, type MountedService } from "./mount-service.js";
