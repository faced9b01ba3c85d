import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import type { ServiceModule } from "../kernel/server/service-module.js";

/** Extra hooks of a service module beyond its RPC implementation. */
export interface ServiceHooks {
  readiness?: ServiceModule["readiness"];
  shutdown?: ServiceModule["shutdown"];
}

/**
 * Builds the {@link ServiceModule} for one protobuf service. RPCs the implementation does not
 * (yet) provide answer UNIMPLEMENTED, so every method of the contract is routed and visible
 * to reflection from day one.
 */
export function defineService<S extends DescService>(
  service: S,
  implementation: Partial<ServiceImpl<S>>,
  hooks: ServiceHooks = {},
): ServiceModule {
  return {
    name: service.typeName,
    register(router) {
      router.service(service, implementation);
    },
    ...hooks,
  };
}
