/**
 * The browser entry of the Nexus TypeScript SDK: the sender and the connect-web transport,
 * nothing that needs Node (no `node:*` modules, no `Buffer`, no HTTP/2 or gRPC transports), so
 * a bundler targeting browsers takes it as is (`tests/sender-web-browser.test.ts` bundles it
 * with esbuild for the browser platform and runs it in Chromium). Node code imports
 * `services/client/index.ts`, which re-exports all of this.
 */

export type { RetryPolicy } from "./retry.js";
export { errorReason, isRetryable, retryDelayOf, retryInterceptor, withIdempotencyKey, withRetry } from "./retry.js";
export type { PayloadEnvelope, Sender, SenderOptions, SendResult } from "./sender.js";
export { createSender, sealPayloadWeb } from "./sender.js";
export type { WebTransportOptions } from "./web.js";
export { createWebTransport } from "./web.js";
