import type { ConnectRouter } from "@connectrpc/connect";
import { errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";
import { domainError } from "../errors.js";

/**
 * Gives the errors Connect raises before any interceptor runs an ErrorInfo, like every other
 * error of the API. A unary Connect JSON request whose body does not decode (not JSON, a
 * field the message does not have, a value of the wrong type) is answered by connect-es
 * itself with `invalid_argument` and no details; the interceptors that add ErrorInfo never
 * see it. This rewrites exactly those answers (status 400, JSON, uncompressed, no details) to
 * carry ErrorInfo reason INVALID_ARGUMENT with the same message, so a client that branches on
 * the reason needs no special case.
 */
export function addDecodeErrorInfo(router: ConnectRouter): void {
  for (let i = 0; i < router.handlers.length; i++) {
    const handler = router.handlers[i]!;
    if (handler.method.methodKind !== "unary") continue;
    router.handlers[i] = Object.assign(async (req: Parameters<UniversalHandler>[0]) => rewrite(await handler(req)), handler);
  }
}

type UniversalResponse = Awaited<ReturnType<UniversalHandler>>;

async function rewrite(res: UniversalResponse): Promise<UniversalResponse> {
  const header = res.header;
  if (res.status !== 400 || !res.body || !header) return res;
  if (!header.get("content-type")?.startsWith("application/json") || header.get("content-encoding")) return res;
  const chunks: Uint8Array[] = [];
  for await (const chunk of res.body) chunks.push(chunk);
  const bytes = Buffer.concat(chunks);
  const again = (body: Uint8Array): UniversalResponse => ({
    ...res,
    body: (async function* () {
      yield body;
    })(),
  });
  let parsed: { code?: unknown; message?: unknown; details?: unknown };
  try {
    parsed = JSON.parse(bytes.toString("utf8")) as typeof parsed;
  } catch {
    return again(bytes);
  }
  if (parsed.code !== "invalid_argument" || (Array.isArray(parsed.details) && parsed.details.length > 0)) return again(bytes);
  const message = typeof parsed.message === "string" ? parsed.message : "the request does not decode";
  const body = errorToJsonBytes(domainError("INVALID_ARGUMENT", message, { cause: "request_decoding" }), {});
  header.set("content-length", String(body.byteLength));
  return again(body);
}
