/**
 * The kernel's Connect interceptors: the server chain (request id → tracing → logging →
 * metrics → error normalisation → extra → validation), each piece on its own, and the client
 * interceptor every outgoing Nexus call uses.
 */
export { serverInterceptors } from "./server-chain.js";
export type { ServerInterceptorOptions } from "./server-chain.js";
export { clientInterceptor } from "./client.js";
export { requestIdInterceptor, requestMetaFromHeaders, ensureRequestMeta, isSaneId, newRequestId } from "./request-id.js";
export { tracingInterceptor, startClientSpan, endClientSpan, headerGetter, headerSetter, TRACER_NAME } from "./tracing.js";
export { loggingInterceptor, logRpc, requestLogger, requestLoggerKey, QUIET_SERVICES } from "./logging.js";
export { metricsInterceptor, recordRpc, rpcMetrics } from "./rpc-metrics.js";
export type { RpcMetrics } from "./rpc-metrics.js";
export { errorNormalizingInterceptor, normalizeError } from "./error-normalizing.js";
export { validationInterceptor, validationError, assertValid, violationField } from "./validation.js";
export type { ValidationOptions } from "./validation.js";
