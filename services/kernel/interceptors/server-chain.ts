import type { Validator } from "@bufbuild/protovalidate";
import type { Interceptor } from "@connectrpc/connect";
import type { Logger } from "pino";
import { observabilityInterceptor } from "./observability.js";
import { validationInterceptor } from "./validation.js";

/** Options of {@link serverInterceptors}. */
export interface ServerInterceptorOptions {
  logger: Logger;
  /** Interceptors of later issues (RBAC, rate limits, idempotency, write freeze), placed
   * after error normalisation and before validation, in the given order. */
  extra?: readonly Interceptor[];
  /** Shared protovalidate validator; default: a new one. */
  validator?: Validator;
}

/**
 * The kernel's server interceptors, outermost first: request id (so everything below sees
 * the ids) → tracing (span around everything measured) → logging → metrics → error
 * normalisation (so logs, metrics and spans see the code the client gets) → `extra` →
 * validation (innermost, right before the handler). The first five are one interceptor,
 * {@link observabilityInterceptor}: one async layer per call instead of five.
 */
export function serverInterceptors(options: ServerInterceptorOptions): Interceptor[] {
  return [
    observabilityInterceptor(options.logger),
    ...(options.extra ?? []),
    validationInterceptor(options.validator ? { validator: options.validator } : {}),
  ];
}
