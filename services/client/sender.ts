import { type Client, createClient, type Transport } from "@connectrpc/connect";
import { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import { type RetryPolicy, withRetry } from "./retry.js";

/**
 * The sender SDK: sends messages of one sender app to the integration service (the hub, or an
 * edge agent), optionally sealed with AES-256-GCM (ING-05). Browser-safe: it uses WebCrypto
 * and any Connect transport — `createNexusClient(...).transport` in Node, or
 * {@link createWebTransport} (connect-web, `fetch`) in a browser, imported from
 * `services/client/browser.ts` (no Node modules).
 *
 * ```ts
 * const sender = createSender({ transport: createNexusClient({ baseUrl, apiKey }).transport, appId, masterSecret });
 * const { messageId } = await sender.send({ order_id: "o-1", total: 12.5 });
 * ```
 */
export interface SenderOptions {
  /** The transport (carries the API key): `createNexusClient(...).transport` or {@link createWebTransport}. */
  transport: Transport;
  /** The sender app. */
  appId: string;
  /** The tenant; empty for the key's own. */
  tenantId?: string;
  /** Base64 of the app's 32-byte master secret: turns on payload encryption. */
  masterSecret?: string;
  /** The master secret's version (default 1). */
  keyVersion?: number;
  /**
   * Retries after UNAVAILABLE (and refusals that did no work), with a doubling delay. Safe:
   * every message carries a client message id, which the hub dedupes. Default 5 attempts.
   */
  retry?: RetryPolicy;
}

/** What the hub answered for one message. */
export interface SendResult {
  /** The hub's message id (the first one's for a duplicate). */
  messageId: string;
  /** The client message id sent (generated when not given). */
  clientMessageId: string;
  /** True when the hub had already accepted this client message id. */
  duplicate: boolean;
  /** Workflows it was queued for. */
  workflows: number;
}

/** A sender of one app's messages. */
export interface Sender {
  /** Sends one message (a JSON object); `messageId` is the client message id (default a UUID). */
  send(payload: Record<string, unknown>, messageId?: string): Promise<SendResult>;
  /** Sends messages one after the other, in order; stops at the first refusal. */
  sendBatch(payloads: Record<string, unknown>[], messageIds?: string[]): Promise<SendResult[]>;
}

/** An encrypted payload as sent (see docs/integration.md, ING-05). */
export interface PayloadEnvelope {
  enc: "aes-256-gcm";
  kv: number;
  iv: string;
  ct: string;
  tag: string;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * A random (version 4) UUID. `crypto.randomUUID` exists only in secure contexts (https, or
 * http on localhost); `crypto.getRandomValues` exists everywhere, so a page on plain http still
 * gets client message ids.
 */
function randomUuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = ((b[6] ?? 0) & 0x0f) | 0x40;
  b[8] = ((b[8] ?? 0) & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** WebCrypto's `subtle`, or a clear error where the browser withholds it (an insecure context). */
function subtleCrypto(): typeof crypto.subtle {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined)
    throw new TypeError("payload encryption needs WebCrypto (crypto.subtle): serve the page over https (or from localhost)");
  return subtle;
}

/**
 * Seals a JSON object for app `appId` with WebCrypto AES-256-GCM: random 12-byte IV, the app
 * id as additional data, the 16-byte tag apart — what the hub opens.
 */
export async function sealPayloadWeb(
  appId: string,
  masterSecret: string,
  keyVersion: number,
  payload: Record<string, unknown>,
): Promise<PayloadEnvelope> {
  const raw = fromBase64(masterSecret);
  if (raw.length !== 32) throw new TypeError("masterSecret must be base64 of 32 bytes");
  const subtle = subtleCrypto();
  const key = await subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"]);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = new Uint8Array(
    await subtle.encrypt(
      { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(appId), tagLength: 128 },
      key,
      new TextEncoder().encode(JSON.stringify(payload)),
    ),
  );
  return {
    enc: "aes-256-gcm",
    kv: keyVersion,
    iv: toBase64(iv),
    ct: toBase64(sealed.subarray(0, sealed.length - 16)),
    tag: toBase64(sealed.subarray(sealed.length - 16)),
  };
}

/** A {@link Sender} for one app. */
export function createSender(options: SenderOptions): Sender {
  if (!options.appId) throw new TypeError("appId is required");
  const client: Client<typeof IntegrationService> = createClient(IntegrationService, options.transport);
  const policy: RetryPolicy = { maxAttempts: 5, ...options.retry };
  async function send(payload: Record<string, unknown>, messageId?: string): Promise<SendResult> {
    const clientMessageId = messageId ?? randomUuid();
    const body = options.masterSecret
      ? ((await sealPayloadWeb(options.appId, options.masterSecret, options.keyVersion ?? 1, payload)) as unknown as Record<string, never>)
      : (payload as Record<string, never>);
    const res = await withRetry(
      () => client.ingest({ tenantId: options.tenantId ?? "", appId: options.appId, payload: body, clientMessageId }),
      policy,
      true,
    );
    return { messageId: res.messageId, clientMessageId, duplicate: res.duplicate, workflows: res.workflows };
  }
  return {
    send,
    async sendBatch(payloads, messageIds) {
      const out: SendResult[] = [];
      for (const [i, p] of payloads.entries()) out.push(await send(p, messageIds?.[i]));
      return out;
    },
  };
}
