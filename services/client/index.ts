/** The Nexus TypeScript SDK. */

export type { NexusClient, NexusClientOptions } from "./create-nexus-client.js";
export { createNexusClient, DEFAULT_NEXUS_URL } from "./create-nexus-client.js";
export type { ResumableRunOptions } from "./resumable-run.js";
export { resumableRun, watchRunResumable } from "./resumable-run.js";
export type { RetryPolicy } from "./retry.js";
export { errorReason, isRetryable, retryDelayOf, retryInterceptor, withIdempotencyKey, withRetry } from "./retry.js";
export type { PayloadEnvelope, Sender, SenderOptions, SendResult } from "./sender.js";
export { createSender, sealPayloadWeb } from "./sender.js";
export type { WebTransportOptions } from "./web.js";
export { createWebTransport } from "./web.js";
