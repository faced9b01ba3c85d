import { accept, type Decision } from "./decision.js";

/**
 * The tenant's SCIM bearer token aggregate (stream `scim_token-<tenant id>`): at most one token
 * per tenant; a rotation replaces it at once, a revocation leaves none. Only the SHA-256 of the
 * token (`nxscim_<token id>_<secret>`) is kept; the token is shown once, when issued.
 */

/** A token was issued (replacing `previousTokenId`, if any). */
export interface ScimTokenRotated {
  type: "ScimTokenRotated";
  tenantId: string;
  tokenId: string;
  previousTokenId: string;
  digest: Uint8Array;
  at: Date;
}

/** The token was revoked. */
export interface ScimTokenRevoked {
  type: "ScimTokenRevoked";
  tenantId: string;
  tokenId: string;
  at: Date;
}

/** Every SCIM token event. */
export type ScimTokenEvent = ScimTokenRotated | ScimTokenRevoked;

/** The tenant's SCIM token; `tokenId` undefined after a revocation. */
export interface ScimTokenState {
  tenantId: string;
  tokenId: string | undefined;
  digest: Uint8Array | undefined;
  createdAt: Date;
}

/** Issue a new token. */
export interface RotateScimToken {
  type: "RotateScimToken";
  tenantId: string;
  tokenId: string;
  digest: Uint8Array;
  now: Date;
}

/** Revoke the current token. */
export interface RevokeScimToken {
  type: "RevokeScimToken";
  now: Date;
}

/** Every SCIM token command. */
export type ScimTokenCommand = RotateScimToken | RevokeScimToken;

/** Applies one event. */
export function evolveScimToken(state: ScimTokenState | undefined, event: ScimTokenEvent): ScimTokenState | undefined {
  switch (event.type) {
    case "ScimTokenRotated":
      return { tenantId: event.tenantId, tokenId: event.tokenId, digest: event.digest, createdAt: event.at };
    case "ScimTokenRevoked":
      return state && { ...state, tokenId: undefined, digest: undefined };
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

/** Decides the events of a command. */
export function decideScimToken(command: ScimTokenCommand, state: ScimTokenState | undefined): Decision<ScimTokenEvent> {
  switch (command.type) {
    case "RotateScimToken":
      return accept({
        type: "ScimTokenRotated",
        tenantId: command.tenantId,
        tokenId: command.tokenId,
        previousTokenId: state?.tokenId ?? "",
        digest: command.digest,
        at: command.now,
      });
    case "RevokeScimToken":
      if (state?.tokenId === undefined) return accept();
      return accept({ type: "ScimTokenRevoked", tenantId: state.tenantId, tokenId: state.tokenId, at: command.now });
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}
