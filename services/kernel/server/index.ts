/**
 * The kernel server: `createServer` (one port, gRPC + gRPC-Web + Connect, health, reflection,
 * CORS, /metrics, /healthz, /readyz, graceful shutdown), the `ServiceModule` contract every
 * service implements, and `installSignalHandlers`.
 */

export { CONSOLE_PATH, consoleDirectory, consoleRoute } from "./console-files.js";
export type { CorsOptions } from "./cors.js";
export { type NodeRequest, type NodeResponse, plain, webHeadersOf } from "./node-http.js";
export type { BoundAddress, ListenOptions, NexusServer, ServerOptions } from "./server.js";
export { createServer, PUBLIC_SERVICES, serverOptionsFromConfig } from "./server.js";
export type { HttpRoute, ReadinessCheck, ReadinessResult, ServiceModule } from "./service-module.js";
export type { Lifecycle } from "./serving-state.js";
export type { SignalOptions } from "./signals.js";
export { installSignalHandlers } from "./signals.js";
