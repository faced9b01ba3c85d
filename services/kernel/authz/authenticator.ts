import { createContextKey } from "@connectrpc/connect";
import type { Principal } from "../context.js";
import type { AccessFailureReason } from "./access-recorder.js";

/** Where a key is being presented: what the refusal record needs. */
export interface PresentationContext {
  /** The procedure the caller wants, e.g. "/nexus.retrieval.v1.RetrievalService/Search". */
  procedure: string;
  /** The caller's address when known (x-forwarded-for). */
  peerAddress?: string;
  /** Cancels the lookup when the call goes away. */
  signal?: AbortSignal;
}

/** The authenticator's answer. */
export type AuthenticatorResult =
  | {
      kind: "authenticated";
      principal: Principal;
      /** When the answer expires without any event; caches never keep it longer. */
      validUntil: Date | undefined;
      /**
       * What the authenticator read about the presented key (the auth service's key record,
       * without its digest), when it has it. Cached with the principal and dropped with it
       * (revocation, rotation, role change…), and handed to handlers under
       * {@link credentialKey}, so WhoAmI answers without reading the key again.
       */
      credential?: object;
    }
  | { kind: "refused"; reason: AccessFailureReason; message: string };

/**
 * Resolves presented API keys to principals — the port between the authentication gate and
 * the auth service. Two adapters: in a process that hosts auth, the auth domain itself
 * (services/auth/local-authenticator.ts); elsewhere AuthService.Authenticate over Connect
 * (remote-authenticator.ts). Either way the authenticator RECORDS its refusals (one
 * AccessDenied event per refused call); the gate records only the refusals it decides itself.
 * Infrastructure failures (auth unreachable) are thrown as ConnectErrors (UNAVAILABLE).
 */
export interface Authenticator {
  authenticate(presentedKey: string, context: PresentationContext): Promise<AuthenticatorResult>;
}

/** Header carrying the refused procedure to AuthService.Authenticate (remote gates). */
export const AUTH_PROCEDURE_HEADER = "x-nexus-auth-procedure";
/** Header carrying the original caller's address to AuthService.Authenticate. */
export const AUTH_PEER_HEADER = "x-nexus-auth-peer";

/**
 * Connect context value: the authenticated key's record as the authenticator returned it
 * (see AuthenticatorResult.credential); undefined when the authenticator gave none (remote
 * authentication). Frozen: shared by every call the cached answer serves.
 */
export const credentialKey = createContextKey<object | undefined>(undefined, { description: "nexus authenticated credential" });
