/**
 * The kernel's Connect interceptors: the server chain (request id → tracing → logging →
 * metrics → error normalisation → extra → validation), each piece on its own, and the client
 * interceptor every outgoing Nexus call uses.
 */

export { clientInterceptor } from "./client.js";
export { errorNormalizingInterceptor, normalizeError } from "./error-normalizing.js";
export { loggingInterceptor, logRpc, QUIET_SERVICES, requestLogger, requestLoggerKey } from "./logging.js";
export { observabilityInterceptor } from "./observability.js";
export { ensureRequestMeta, isSaneId, newRequestId, requestIdInterceptor, requestMetaFromHeaders } from "./request-id.js";
export type { RpcMetrics } from "./rpc-metrics.js";
export { metricsInterceptor, recordRpc, rpcMetrics } from "./rpc-metrics.js";
export type { ServerInterceptorOptions } from "./server-chain.js";
export { serverInterceptors } from "./server-chain.js";
export { endClientSpan, headerGetter, headerSetter, startClientSpan, TRACER_NAME, tracingInterceptor } from "./tracing.js";
export type { ValidationOptions } from "./validation.js";
export { assertValid, validationError, validationInterceptor, violationField } from "./validation.js";
