import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

/**
 * ING-05 encrypted payloads. A sender seals the JSON text of its payload with AES-256-GCM under
 * its app's master secret (32 random bytes, base64) and sends this envelope as the payload:
 *
 * ```json
 * { "enc": "aes-256-gcm", "kv": 2, "iv": "<base64, 12 bytes>", "ct": "<base64 ciphertext>", "tag": "<base64, 16 bytes>" }
 * ```
 *
 * `kv` names the master secret version (RotateMasterSecret adds one; earlier versions open
 * until retired). The additional authenticated data is the app id (UTF-8), so an envelope
 * made for one app does not open for another.
 */
export const ENVELOPE_ALGORITHM = "aes-256-gcm";

/** An encrypted payload as sent. */
export interface PayloadEnvelope {
  enc: typeof ENVELOPE_ALGORITHM;
  kv: number;
  iv: string;
  ct: string;
  tag: string;
}

/** Why an envelope was refused (no secret material in the text). */
export class EnvelopeError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
    this.name = "EnvelopeError";
  }
}

/** A new master secret, base64 of 32 random bytes. */
export function newMasterSecret(): string {
  return randomBytes(32).toString("base64");
}

function keyOf(secret: string): Buffer {
  const key = Buffer.from(secret, "base64");
  if (key.length !== 32) throw new EnvelopeError("master_secret", "a master secret is base64 of 32 bytes");
  return key;
}

/** Seals a JSON value for app `appId` (what the SDKs do; tests and the CLI use it too). */
export function sealPayload(appId: string, secret: string, version: number, value: unknown): PayloadEnvelope {
  const iv = randomBytes(12);
  const cipher = createCipheriv(ENVELOPE_ALGORITHM, keyOf(secret), iv);
  cipher.setAAD(Buffer.from(appId, "utf8"));
  const ct = Buffer.concat([cipher.update(JSON.stringify(value), "utf8"), cipher.final()]);
  return {
    enc: ENVELOPE_ALGORITHM,
    kv: version,
    iv: iv.toString("base64"),
    ct: ct.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
  };
}

/** Whether a payload has the shape of an envelope. */
export function isEnvelope(payload: unknown): payload is Record<string, unknown> {
  return typeof payload === "object" && payload !== null && (payload as Record<string, unknown>).enc !== undefined;
}

/**
 * The envelope's key version, after checking its shape; throws {@link EnvelopeError} naming
 * the bad field.
 */
export function envelopeVersion(payload: unknown): number {
  if (!isEnvelope(payload)) throw new EnvelopeError("payload", "this app requires an encrypted payload (see docs/integration.md)");
  if (payload.enc !== ENVELOPE_ALGORITHM) throw new EnvelopeError("payload.enc", `must be "${ENVELOPE_ALGORITHM}"`);
  const kv = payload.kv;
  if (typeof kv !== "number" || !Number.isInteger(kv) || kv < 1)
    throw new EnvelopeError("payload.kv", "must be the master secret version (an integer ≥ 1)");
  for (const f of ["iv", "ct", "tag"]) {
    if (typeof payload[f] !== "string") throw new EnvelopeError(`payload.${f}`, "must be a base64 string");
  }
  return kv;
}

/** Opens an envelope; throws {@link EnvelopeError} when it does not open with `secret` or is not a JSON object inside. */
export function openPayload(appId: string, secret: string, payload: unknown): Record<string, unknown> {
  envelopeVersion(payload);
  const env = payload as unknown as PayloadEnvelope;
  const iv = Buffer.from(env.iv, "base64");
  const tag = Buffer.from(env.tag, "base64");
  if (iv.length !== 12) throw new EnvelopeError("payload.iv", "must be 12 bytes (base64)");
  if (tag.length !== 16) throw new EnvelopeError("payload.tag", "must be 16 bytes (base64)");
  let text: string;
  try {
    const decipher = createDecipheriv(ENVELOPE_ALGORITHM, keyOf(secret), iv);
    decipher.setAAD(Buffer.from(appId, "utf8"));
    decipher.setAuthTag(tag);
    text = Buffer.concat([decipher.update(Buffer.from(env.ct, "base64")), decipher.final()]).toString("utf8");
  } catch {
    throw new EnvelopeError(
      "payload",
      `the payload does not decrypt with master secret version ${env.kv} of this app (wrong key or altered data)`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new EnvelopeError("payload", "the decrypted payload is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new EnvelopeError("payload", "the decrypted payload must be a JSON object");
  return value as Record<string, unknown>;
}
