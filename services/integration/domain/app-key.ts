import { createHash, randomBytes } from "node:crypto";

/**
 * Sender app keys: `nxa_<app id>_<secret>` (256 random bits, base64url). Like API keys, only the
 * SHA-256 digest of the whole key is stored; the plaintext is returned once.
 */
export const APP_KEY_PREFIX = "nxa_";

const PLAINTEXT = /^nxa_([a-f0-9]{24})_([A-Za-z0-9_-]{43})$/;

/** A freshly generated app key and what is stored of it. */
export interface GeneratedAppKey {
  plaintext: string;
  digest: Buffer;
  displayPrefix: string;
}

/** A new random resource id (24 hex characters). */
export function newId(): string {
  return randomBytes(12).toString("hex");
}

/** Generates a key for app `appId`. */
export function generateAppKey(appId: string): GeneratedAppKey {
  const plaintext = `${APP_KEY_PREFIX}${appId}_${randomBytes(32).toString("base64url")}`;
  return { plaintext, digest: appKeyDigest(plaintext), displayPrefix: `${APP_KEY_PREFIX}${appId}_` };
}

/** SHA-256 of a plaintext app key. */
export function appKeyDigest(plaintext: string): Buffer {
  return createHash("sha256").update(plaintext, "utf8").digest();
}

/** The app id a well-formed key names, or undefined. */
export function appIdOfKey(plaintext: string): string | undefined {
  return PLAINTEXT.exec(plaintext)?.[1];
}

/**
 * Edge agent tokens (docs/edge.md): `nxe_<edge id>_<secret>` (256 random bits), stored as the
 * SHA-256 digest of the whole token like app keys; the plaintext is returned once by RegisterEdge.
 */
export const EDGE_TOKEN_PREFIX = "nxe_";

/** Generates the token of edge agent `edgeId`. */
export function generateEdgeToken(edgeId: string): GeneratedAppKey {
  const plaintext = `${EDGE_TOKEN_PREFIX}${edgeId}_${randomBytes(32).toString("base64url")}`;
  return { plaintext, digest: appKeyDigest(plaintext), displayPrefix: `${EDGE_TOKEN_PREFIX}${edgeId}_` };
}
