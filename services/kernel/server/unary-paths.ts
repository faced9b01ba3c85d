import type { DescMethod, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import type { ConnectRouter, ConnectRouterOptions, MethodImplSpec } from "@connectrpc/connect";
import { createMethodImplSpec, createServiceImplSpec } from "@connectrpc/connect";
import { createMethodUrl, validateUniversalHandlerOptions } from "@connectrpc/connect/protocol";
import type { ConnectUnaryHandler } from "./connect-unary.js";
import { createConnectUnaryHandler } from "./connect-unary.js";
import type { GrpcUnaryHandler } from "./grpc-unary.js";
import { createGrpcUnaryHandler } from "./grpc-unary.js";

/** The unary fast paths of one method: gRPC over HTTP/2 (grpc-unary.ts) and Connect (connect-unary.ts). */
export interface UnaryPaths {
  grpc: GrpcUnaryHandler;
  connect: ConnectUnaryHandler;
}

/**
 * Registers services on `router` as usual and builds, for every unary method of a service
 * registered without options of its own, its {@link UnaryPaths} keyed by its request path.
 * `routerOptions` are the router's own (the same interceptors, request gate, limits and
 * compression).
 */
export function recordUnaryPaths(router: ConnectRouter, routerOptions: ConnectRouterOptions, into: Map<string, UnaryPaths>): ConnectRouter {
  const opt = validateUniversalHandlerOptions(routerOptions);
  // A method registered again replaces the earlier one, as in the router; one registered with
  // options of its own is left to connect's handler.
  const record = (method: DescMethod, spec: MethodImplSpec | undefined) => {
    const path = createMethodUrl("/", method);
    if (spec?.kind === "unary") {
      into.set(path, { grpc: createGrpcUnaryHandler(spec, opt), connect: createConnectUnaryHandler(spec, opt) });
    } else {
      into.delete(path);
    }
  };
  const recording: ConnectRouter = {
    handlers: router.handlers,
    service(desc: DescService, impl: never, options?: never) {
      router.service(desc, impl, options);
      const specs = options === undefined ? createServiceImplSpec(desc, impl).methods : {};
      for (const method of desc.methods) record(method, specs[method.localName] as MethodImplSpec | undefined);
      return recording;
    },
    rpc(method: DescMethod, impl: never, options?: never) {
      router.rpc(method as never, impl, options);
      record(method, options === undefined ? (createMethodImplSpec(method as DescMethodUnary, impl) as MethodImplSpec) : undefined);
      return recording;
    },
  } as ConnectRouter;
  return recording;
}
