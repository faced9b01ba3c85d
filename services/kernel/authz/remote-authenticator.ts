import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type Client, Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { AuthService } from "../../../gen/nexus/auth/v1/auth_service_pb.js";
import { CORRELATION_ID_HEADER, currentRequestMeta, REQUEST_ID_HEADER } from "../context.js";
import { domainError, errorReason } from "../errors.js";
import type { AccessFailureReason } from "./access-recorder.js";
import { isAccessToken } from "./authentication-gate.js";
import { AUTH_PEER_HEADER, AUTH_PROCEDURE_HEADER, type Authenticator, type AuthenticatorResult } from "./authenticator.js";
import { principalFromProto } from "./principal-proto.js";

const REFUSALS: ReadonlySet<string> = new Set<AccessFailureReason>([
  "AUTH_UNAUTHORIZED",
  "AUTH_REVOKED_KEY",
  "AUTH_EXPIRED_KEY",
  "AUTH_INACTIVE_KEY",
  "TENANT_SUSPENDED",
  "AUTH_TOKEN_EXPIRED",
  "AUTH_TOKEN_AUDIENCE",
  "AUTH_TOKEN_ISSUER",
  "AUTH_TOKEN_INVALID",
  "AUTH_UNKNOWN_USER",
]);

/** Options of {@link createRemoteAuthenticator}. */
export interface RemoteAuthenticatorOptions {
  /** A transport to a process hosting AuthService (the runtime's peer transport to NEXUS_AUTH_URL). */
  transport?: Transport;
  /** Or its base URL, e.g. "http://nexus-auth:8080" (Connect protocol, binary, HTTP/1.1). */
  baseUrl?: string;
  /** Per-call deadline. Default 5 000 ms. */
  timeoutMs?: number;
}

/**
 * The authenticator of processes that do not host auth: AuthService.Authenticate over the
 * given transport (or Connect binary over HTTP/1.1 to `baseUrl`). The refused procedure and peer travel in
 * headers so the auth service records the refusal (once) with the right procedure. When auth
 * cannot be reached the call fails closed with UNAVAILABLE reason DEPENDENCY_UNAVAILABLE.
 */
export function createRemoteAuthenticator(options: RemoteAuthenticatorOptions): Authenticator {
  const timeoutMs = options.timeoutMs ?? 5_000;
  let transport = options.transport;
  if (transport === undefined) {
    if (!options.baseUrl) throw new Error("createRemoteAuthenticator needs a transport or a baseUrl");
    transport = createConnectTransport({ baseUrl: options.baseUrl, httpVersion: "1.1", useBinaryFormat: true });
  }
  const client: Client<typeof AuthService> = createClient(AuthService, transport);
  return {
    async authenticate(presentedKey, context): Promise<AuthenticatorResult> {
      const headers = new Headers({ [AUTH_PROCEDURE_HEADER]: context.procedure });
      if (context.peerAddress) headers.set(AUTH_PEER_HEADER, context.peerAddress);
      const meta = currentRequestMeta();
      if (meta) {
        headers.set(REQUEST_ID_HEADER, meta.requestId);
        headers.set(CORRELATION_ID_HEADER, meta.correlationId);
      }
      try {
        const res = await client.authenticate(isAccessToken(presentedKey) ? { accessToken: presentedKey } : { apiKey: presentedKey }, {
          headers,
          timeoutMs,
          ...(context.signal ? { signal: context.signal } : {}),
        });
        if (!res.principal) throw new Error("Authenticate answered without a principal");
        return {
          kind: "authenticated",
          principal: principalFromProto(res.principal),
          validUntil: res.validUntil ? timestampDate(res.validUntil) : undefined,
        };
      } catch (err) {
        const reason = errorReason(err);
        if (reason !== undefined && REFUSALS.has(reason)) {
          return { kind: "refused", reason: reason as AccessFailureReason, message: ConnectError.from(err).rawMessage };
        }
        const ce = ConnectError.from(err);
        if (ce.code === Code.Canceled) throw ce;
        throw domainError(
          "DEPENDENCY_UNAVAILABLE",
          "the auth service could not be reached to check the API key",
          { dependency: "auth" },
          { cause: err },
        );
      }
    },
  };
}
