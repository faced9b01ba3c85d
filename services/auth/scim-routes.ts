import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus } from "@connectrpc/connect/protocol-connect";
import type { Logger } from "pino";
import type { ClientAddressResolver } from "../kernel/authz/client-address.js";
import type { NodeRequest, NodeResponse } from "../kernel/server/node-http.js";
import { plain, webHeadersOf } from "../kernel/server/node-http.js";
import type { HttpRoute } from "../kernel/server/service-module.js";
import { ScimError } from "./domain/scim.js";
import { SCIM_MAX_RESULTS, type ScimApplication } from "./scim-application.js";
import { resourceTypes, schemas, serviceProviderConfig } from "./scim-discovery.js";

/** Where SCIM is served. */
export const SCIM_PATH = "/scim/v2";
/** Largest request body (a group PUT with thousands of members fits). */
const MAX_BODY_BYTES = 1024 * 1024;
const CONTENT_TYPE = "application/scim+json; charset=utf-8";

function send(res: NodeResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  plain(res).writeHead(status, { "content-type": CONTENT_TYPE, "cache-control": "no-store", ...headers });
  plain(res).end(body === undefined ? undefined : JSON.stringify(body));
}

function header(req: NodeRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(", ") : v;
}

async function readJson(req: NodeRequest): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > MAX_BODY_BYTES) throw new ScimError(413, `the request body exceeds ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "null");
  } catch {
    throw new ScimError(400, "the request body is not JSON", "invalidSyntax");
  }
}

/** A refusal as a SCIM error body; domain errors keep their HTTP status. */
function refuse(res: NodeResponse, err: unknown, logger: Logger): void {
  if (err instanceof ScimError) {
    send(res, err.status, err.body());
    return;
  }
  const ce = ConnectError.from(err);
  if (ce.code === Code.Internal || ce.code === Code.Unknown) logger.error({ err }, "SCIM request failed");
  const status = ce.code === Code.AlreadyExists ? 409 : codeToHttpStatus(ce.code);
  const scimType = status === 409 ? "uniqueness" : status === 400 ? "invalidValue" : undefined;
  send(res, status, new ScimError(status, ce.code === Code.Internal ? "internal error" : ce.rawMessage, scimType).body());
}

/**
 * SCIM 2.0 (RFC 7644) for the tenant whose SCIM token is presented (`Authorization: Bearer
 * nxscim_…`): `/scim/v2/Users[/<id>]` and `/scim/v2/Groups[/<id>]` (GET with filter and paging,
 * POST, PUT, PATCH, DELETE, ETags with If-Match), and the unauthenticated discovery documents
 * `ServiceProviderConfig`, `ResourceTypes`, `Schemas`. Errors are SCIM error bodies.
 */
export function scimRoutes(scim: ScimApplication, logger: Logger, clientAddress: ClientAddressResolver): HttpRoute[] {
  return [
    {
      path: SCIM_PATH,
      prefix: true,
      async handle(req, res) {
        try {
          const host = String(req.headers["x-forwarded-host"] ?? req.headers.host ?? req.headers[":authority"] ?? "localhost").split(
            ",",
          )[0];
          const proto =
            String(req.headers["x-forwarded-proto"] ?? "http")
              .split(",")[0]
              ?.trim() || "http";
          const url = new URL(req.url ?? "/", `${proto}://${host?.trim()}`);
          const base = `${url.origin}${SCIM_PATH}`;
          const parts = url.pathname
            .slice(SCIM_PATH.length)
            .split("/")
            .filter(Boolean)
            .map((p) => decodeURIComponent(p));
          const method = (req.method ?? "GET").toUpperCase();
          const [collection, id, extra] = parts;
          if (extra !== undefined || collection === undefined) throw new ScimError(404, `no SCIM endpoint at ${url.pathname}`);

          // Discovery: no tenant data, no token needed.
          if (collection === "ServiceProviderConfig" || collection === "ResourceTypes" || collection === "Schemas") {
            if (method !== "GET") throw new ScimError(405, `${collection} is read-only`);
            const doc =
              collection === "ServiceProviderConfig"
                ? id === undefined
                  ? serviceProviderConfig(base, SCIM_MAX_RESULTS)
                  : undefined
                : collection === "ResourceTypes"
                  ? resourceTypes(base, id)
                  : schemas(base, id);
            if (doc === undefined) throw new ScimError(404, `no ${collection} ${id ?? ""}`);
            return send(res, 200, doc);
          }
          if (collection !== "Users" && collection !== "Groups") throw new ScimError(404, `no SCIM endpoint at ${url.pathname}`);

          // The audited address of a refused token: X-Forwarded-For only from a trusted proxy.
          const peer = clientAddress(req.socket?.remoteAddress, webHeadersOf(req.headers));
          const caller = await scim.authenticate(header(req, "authorization"), peer);
          const ifMatch = header(req, "if-match");
          const users = collection === "Users";
          const withEtag = (resource: Record<string, unknown>, status = 200, extraHeaders: Record<string, string> = {}) => {
            const version = (resource.meta as { version?: string } | undefined)?.version;
            send(res, status, resource, { ...(version ? { etag: version } : {}), ...extraHeaders });
          };
          if (id === undefined) {
            if (method === "GET") {
              return send(
                res,
                200,
                users ? await scim.listUsers(caller, url.searchParams, base) : await scim.listGroups(caller, url.searchParams, base),
              );
            }
            if (method === "POST") {
              const body = await readJson(req);
              const created = users ? await scim.createUser(caller, body, base) : await scim.createGroup(caller, body, base);
              return withEtag(created, 201, { location: String((created.meta as { location: string }).location) });
            }
            throw new ScimError(405, `${method} is not supported on /${collection}`);
          }
          switch (method) {
            case "GET": {
              const found = users ? await scim.getUser(caller, id, base) : await scim.getGroup(caller, id, base, url.searchParams);
              const inm = header(req, "if-none-match");
              const version = (found.meta as { version: string }).version;
              if (inm?.split(",").some((t) => t.trim() === version)) {
                return send(res, 304, undefined, { etag: version });
              }
              return withEtag(found);
            }
            case "PUT": {
              const body = await readJson(req);
              return withEtag(
                users ? await scim.replaceUser(caller, id, body, ifMatch, base) : await scim.replaceGroup(caller, id, body, ifMatch, base),
              );
            }
            case "PATCH": {
              const body = await readJson(req);
              return withEtag(
                users ? await scim.patchUser(caller, id, body, ifMatch, base) : await scim.patchGroup(caller, id, body, ifMatch, base),
              );
            }
            case "DELETE":
              if (users) await scim.deleteUser(caller, id, ifMatch);
              else await scim.deleteGroup(caller, id, ifMatch);
              plain(res).writeHead(204, { "cache-control": "no-store" });
              plain(res).end();
              return;
            default:
              throw new ScimError(405, `${method} is not supported on /${collection}/<id>`);
          }
        } catch (err) {
          refuse(res, err, logger);
        }
      },
    },
  ];
}
