import type { Client, Interceptor, Transport } from "@connectrpc/connect";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { AgentService } from "../../gen/nexus/agent/v1/agent_service_pb.js";
import { AuditService } from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { EventStoreService } from "../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { GovernanceService } from "../../gen/nexus/governance/v1/governance_service_pb.js";
import { IdentityService } from "../../gen/nexus/identity/v1/identity_service_pb.js";
import { IngestionService } from "../../gen/nexus/ingestion/v1/ingestion_service_pb.js";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { ModulesService } from "../../gen/nexus/modules/v1/modules_service_pb.js";
import { RetrievalService } from "../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import { type RetryPolicy, retryInterceptor } from "./retry.js";

/** Options of {@link createNexusClient}. */
export interface NexusClientOptions {
  /** Where Nexus listens, e.g. "http://127.0.0.1:8080" (default NEXUS_URL, else that address). */
  baseUrl?: string;
  /** API key (`nxs_…`), sent as `Authorization: Bearer …` (default NEXUS_API_KEY). */
  apiKey?: string;
  /**
   * Wire protocol: "connect" (default; HTTP/1.1, JSON-able, works through any proxy) or "grpc"
   * (HTTP/2 cleartext).
   */
  protocol?: "connect" | "grpc";
  /** Use JSON instead of binary Protobuf on the Connect protocol (default false). */
  useJson?: boolean;
  /** Extra interceptors (tracing, logging) run before the request leaves. */
  interceptors?: Interceptor[];
  /** Extra headers on every call (e.g. x-correlation-id). */
  headers?: Record<string, string>;
  /** Default timeout per call in milliseconds (none by default; streams run until done). */
  timeoutMs?: number;
  /**
   * Retries of unary calls the server refused before doing work (RATE_LIMITED, SERVICE_BUSY,
   * WRITE_FROZEN…), waiting as its RetryInfo asks; reads and calls with an idempotency key are
   * also retried after UNAVAILABLE. Off by default (a refusal reaches the caller at once);
   * `retry: {}` retries up to 4 attempts. The `nexus` CLI turns it on.
   */
  retry?: RetryPolicy;
}

/** Typed clients for every Nexus service, sharing one transport. */
export interface NexusClient {
  auth: Client<typeof AuthService>;
  metering: Client<typeof MeteringService>;
  ingestion: Client<typeof IngestionService>;
  retrieval: Client<typeof RetrievalService>;
  agent: Client<typeof AgentService>;
  audit: Client<typeof AuditService>;
  /** The event store: live change feed (WatchEvents) and event catalogue. */
  events: Client<typeof EventStoreService>;
  modules: Client<typeof ModulesService>;
  integration: Client<typeof IntegrationService>;
  /** Edge agents: register, assign apps, revoke (docs/edge.md). */
  edges: Client<typeof EdgeService>;
  /** People (users, memberships) and the tenant's OpenID Connect provider. */
  identity: Client<typeof IdentityService>;
  /** Data governance: legal holds, retention policies and their reports. */
  governance: Client<typeof GovernanceService>;
  /** The underlying transport, for calling health or other services. */
  transport: Transport;
}

/** Default base URL when neither the option nor NEXUS_URL is set. */
export const DEFAULT_NEXUS_URL = "http://127.0.0.1:8080";

/**
 * The TypeScript SDK: typed clients for all Nexus services over Connect (default) or gRPC,
 * with the API key attached to every call.
 *
 * ```ts
 * const nexus = createNexusClient({ baseUrl: "http://127.0.0.1:8080", apiKey: process.env.NEXUS_API_KEY });
 * const me = await nexus.auth.whoAmI({});
 * ```
 */
export function createNexusClient(options: NexusClientOptions = {}): NexusClient {
  const baseUrl = options.baseUrl ?? process.env.NEXUS_URL ?? DEFAULT_NEXUS_URL;
  const apiKey = options.apiKey ?? process.env.NEXUS_API_KEY;
  const staticHeaders = options.headers ?? {};
  const attach: Interceptor = (next) => (req) => {
    if (apiKey && !req.header.has("authorization")) req.header.set("authorization", `Bearer ${apiKey}`);
    for (const [k, v] of Object.entries(staticHeaders)) if (!req.header.has(k)) req.header.set(k, v);
    return next(req);
  };
  const retry = options.retry ? [retryInterceptor(options.retry)] : [];
  const interceptors = [...retry, attach, ...(options.interceptors ?? [])];
  const common = { baseUrl, interceptors, defaultTimeoutMs: options.timeoutMs };
  const transport =
    options.protocol === "grpc"
      ? createGrpcTransport({ ...common })
      : createConnectTransport({ ...common, httpVersion: "1.1", useBinaryFormat: !options.useJson });
  return {
    auth: createClient(AuthService, transport),
    metering: createClient(MeteringService, transport),
    ingestion: createClient(IngestionService, transport),
    retrieval: createClient(RetrievalService, transport),
    agent: createClient(AgentService, transport),
    audit: createClient(AuditService, transport),
    events: createClient(EventStoreService, transport),
    modules: createClient(ModulesService, transport),
    integration: createClient(IntegrationService, transport),
    edges: createClient(EdgeService, transport),
    identity: createClient(IdentityService, transport),
    governance: createClient(GovernanceService, transport),
    transport,
  };
}
