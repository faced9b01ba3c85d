import { type Client, Code, ConnectError } from "@connectrpc/connect";
import type { AuthService } from "../../gen/nexus/auth/v1/auth_service_pb.js";
import type { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import type { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { createNexusClient } from "../../services/client/index.js";
import { errorReason } from "../../services/kernel/errors.js";

/** Where the operator reaches Nexus, and with which platform key. */
export interface NexusEndpoints {
  /** Base URL of the auth service, e.g. http://nexus-auth:8080. */
  authUrl: string;
  /** Base URL of the metering service. */
  meteringUrl: string;
  /** Base URL of the integration service (Workflow, Destination, SenderApp). Default: authUrl (one-process installs). */
  integrationUrl?: string;
  /** Platform API key (`nxs_…`) the operator acts with. */
  platformKey: string;
  /** Per-call timeout. Default 10000 ms. */
  timeoutMs?: number;
}

/** The Nexus APIs the operator drives, over the TypeScript SDK (Connect protocol). */
export interface NexusApi {
  /** AuthService as the platform principal. */
  auth: Client<typeof AuthService>;
  /** MeteringService as the platform principal. */
  metering: Client<typeof MeteringService>;
  /** IntegrationService as the platform principal (it names the tenant in each call). */
  integration: Client<typeof IntegrationService>;
  /** AuthService as another key (to check that a tenant's key authenticates). */
  authAs(apiKey: string): Client<typeof AuthService>;
}

/** Builds the clients once; they share keep-alive connections. */
export function createNexusApi(endpoints: NexusEndpoints): NexusApi {
  const timeoutMs = endpoints.timeoutMs ?? 10_000;
  const platformAuth = createNexusClient({ baseUrl: endpoints.authUrl, apiKey: endpoints.platformKey, timeoutMs });
  const platformMetering = createNexusClient({ baseUrl: endpoints.meteringUrl, apiKey: endpoints.platformKey, timeoutMs });
  const platformIntegration = createNexusClient({
    baseUrl: endpoints.integrationUrl ?? endpoints.authUrl,
    apiKey: endpoints.platformKey,
    timeoutMs,
  });
  return {
    auth: platformAuth.auth,
    metering: platformMetering.metering,
    integration: platformIntegration.integration,
    authAs: (apiKey) => createNexusClient({ baseUrl: endpoints.authUrl, apiKey, timeoutMs }).auth,
  };
}

/** Whether `err` is a Nexus (Connect) error with this code. */
export function hasCode(err: unknown, code: Code): boolean {
  return err instanceof ConnectError && err.code === code;
}

/**
 * A service error as a condition reason and message: reason `Nexus<Code>` (e.g.
 * NexusUnimplemented, NexusUnavailable), message `<code> <REASON>: <message>` with the
 * ErrorInfo reason when the service sent one.
 */
export function describeNexusError(err: unknown): { reason: string; message: string } {
  if (!(err instanceof ConnectError)) {
    return { reason: "OperatorError", message: err instanceof Error ? err.message : String(err) };
  }
  const name = Code[err.code] ?? "Unknown";
  const info = errorReason(err);
  return { reason: `Nexus${name}`, message: `${name.toLowerCase()}${info ? ` ${info}` : ""}: ${err.rawMessage}` };
}
