/**
 * A Connect-protocol server-streaming call made by hand with fetch over HTTP/1.1 and JSON —
 * exactly what `curl` does — to check that streams work for clients without a Connect or
 * gRPC library. Request: one envelope (flags 0, big-endian length, JSON). Response: envelopes
 * as they arrive; the one with flag 0x02 is the end of the stream (`{}` or `{"error": …}`).
 */

/** The end-of-stream message of the Connect protocol. */
export interface ConnectEndStream {
  error?: { code: string; message?: string; details?: unknown[] };
  metadata?: Record<string, string[]>;
}

/** What a {@link connectJsonStream} call saw. */
export interface ConnectJsonStreamResult {
  status: number;
  headers: Headers;
  /** Each message's JSON, in arrival order. */
  messages: Record<string, unknown>[];
  end: ConnectEndStream | undefined;
  /** Set when the call was aborted before the end-of-stream envelope. */
  aborted: boolean;
}

/** Frames a JSON body as one Connect envelope. */
export function connectEnvelope(json: unknown, flags = 0): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(5 + body.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, body.length);
  out.set(body, 5);
  return out;
}

/**
 * POSTs a Connect streaming request (`application/connect+json`) and reads envelopes as they
 * arrive; `onMessage` sees each one and may return "abort" to cancel the call there.
 */
export async function connectJsonStream(
  url: string,
  request: unknown,
  options: {
    headers?: Record<string, string>;
    onMessage?: (message: Record<string, unknown>) => "abort" | undefined;
    timeoutMs?: number;
  } = {},
): Promise<ConnectJsonStreamResult> {
  const controller = new AbortController();
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/connect+json",
      "connect-protocol-version": "1",
      ...(options.timeoutMs ? { "connect-timeout-ms": String(options.timeoutMs) } : {}),
      ...options.headers,
    },
    body: connectEnvelope(request),
    signal: controller.signal,
  });
  const result: ConnectJsonStreamResult = { status: res.status, headers: res.headers, messages: [], end: undefined, aborted: false };
  if (!res.body) return result;
  let buffer = new Uint8Array(0);
  try {
    for await (const chunk of res.body) {
      const merged = new Uint8Array(buffer.length + chunk.length);
      merged.set(buffer);
      merged.set(chunk, buffer.length);
      buffer = merged;
      while (buffer.length >= 5) {
        const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
        if (buffer.length < 5 + length) break;
        const flags = buffer[0]!;
        const json = JSON.parse(new TextDecoder().decode(buffer.subarray(5, 5 + length))) as Record<string, unknown>;
        buffer = buffer.slice(5 + length);
        if (flags & 0x02) {
          result.end = json as ConnectEndStream;
          continue;
        }
        result.messages.push(json);
        if (options.onMessage?.(json) === "abort") {
          result.aborted = true;
          controller.abort();
          return result;
        }
      }
    }
  } catch (err) {
    if (!result.aborted) throw err;
  }
  return result;
}
