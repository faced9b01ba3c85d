import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Logger } from "pino";
import type { NodeRequest as Req, NodeResponse as Res } from "./node-http.js";
import { plain } from "./node-http.js";

/** Where the OpenAPI document is served. */
export const OPENAPI_PATH = "/openapi.json";

/** The generated document, relative to the repository (or image) root. */
const DOCUMENT_FILE = join("docs", "openapi.json");

/** Options of {@link createOpenApiEndpoint}. */
export interface OpenApiEndpointOptions {
  /**
   * The names this server mounts (type names such as "nexus.auth.v1.AuthService"; other
   * names are ignored), read at the first request: routes are registered by then. The
   * document keeps only their paths, so `nexus serve --service auth` describes auth alone.
   */
  services: () => readonly string[];
  logger: Logger;
  /**
   * The generated document (docs/openapi.json, `npm run openapi`). Default: the nearest
   * `docs/openapi.json` above this module — the repository checkout, or an image that
   * ships the file next to dist/.
   */
  documentPath?: string;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The nearest `docs/openapi.json` at or above `from`, if any. */
export function findOpenApiDocument(from = dirname(fileURLToPath(import.meta.url))): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = join(dir, DOCUMENT_FILE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Every local `$ref` ("#/components/<kind>/<name>") anywhere in `value`. */
function collectRefs(value: Json, out: Set<string>): void {
  if (Array.isArray(value)) {
    for (const v of value) collectRefs(v, out);
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === "$ref" && typeof v === "string" && v.startsWith("#/components/")) out.add(v);
      else collectRefs(v, out);
    }
  }
}

/**
 * The document cut to the procedures of `services`: paths of other services, their tags and
 * the components only they used are dropped; `servers` becomes this server ("/").
 */
export function documentForServices(doc: JsonObject, services: ReadonlySet<string>): JsonObject {
  const paths = isObject(doc.paths) ? doc.paths : {};
  const kept: JsonObject = {};
  for (const [path, item] of Object.entries(paths)) {
    // "/<package>.<Service>/<Method>"
    if (services.has(path.split("/")[1] ?? "")) kept[path] = item;
  }
  const tags = Array.isArray(doc.tags) ? doc.tags.filter((t) => isObject(t) && typeof t.name === "string" && services.has(t.name)) : [];

  const components = isObject(doc.components) ? doc.components : {};
  const reached = new Set<string>();
  const pending: Json[] = [kept];
  while (pending.length > 0) {
    const found = new Set<string>();
    collectRefs(pending.pop()!, found);
    for (const ref of found) {
      if (reached.has(ref)) continue;
      reached.add(ref);
      const [, , kind, name] = ref.split("/");
      const section = kind !== undefined ? components[kind] : undefined;
      const target = isObject(section) && name !== undefined ? section[name] : undefined;
      if (target !== undefined) pending.push(target);
    }
  }
  const cut: JsonObject = {};
  for (const [kind, section] of Object.entries(components)) {
    // Security schemes are named by `security`, not referenced: keep them whole.
    if (kind === "securitySchemes" || !isObject(section)) {
      cut[kind] = section;
      continue;
    }
    cut[kind] = Object.fromEntries(Object.entries(section).filter(([name]) => reached.has(`#/components/${kind}/${name}`)));
  }
  return { ...doc, servers: [{ url: "/", description: "This server." }], tags, paths: kept, components: cut };
}

/**
 * GET/HEAD /openapi.json: the OpenAPI 3.1 description of the RPCs this server mounts, as
 * plain JSON over HTTP (docs/openapi.json, generated from the protos by `npm run openapi`),
 * without authentication, like /healthz. Read and cut once, at the first request. 404 with
 * a JSON explanation when the build does not ship the file. Returns `handle(req, res)`:
 * true when it answered.
 */
export function createOpenApiEndpoint(options: OpenApiEndpointOptions): (req: Req, res: Res) => boolean {
  let body: string | undefined;
  let missing = false;

  const load = (): string | undefined => {
    if (body !== undefined || missing) return body;
    const path = options.documentPath ?? findOpenApiDocument();
    if (path === undefined || !existsSync(path)) {
      missing = true;
      options.logger.warn(
        { path: path ?? DOCUMENT_FILE },
        "openapi document not found: GET /openapi.json answers 404 (ship docs/openapi.json with the build)",
      );
      return undefined;
    }
    const doc = JSON.parse(readFileSync(path, "utf8")) as JsonObject;
    body = `${JSON.stringify(documentForServices(doc, new Set(options.services())))}\n`;
    return body;
  };

  return (req, res) => {
    if ((req.url ?? "").split("?", 1)[0] !== OPENAPI_PATH) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res).writeHead(405, { allow: "GET, HEAD" });
      plain(res).end();
      return true;
    }
    let text: string | undefined;
    try {
      text = load();
    } catch (err) {
      options.logger.error({ err }, "reading the openapi document failed");
      plain(res).writeHead(500, { "content-type": "application/json" });
      plain(res).end(req.method === "HEAD" ? undefined : `${JSON.stringify({ error: "reading the OpenAPI document failed" })}\n`);
      return true;
    }
    if (text === undefined) {
      plain(res).writeHead(404, { "content-type": "application/json" });
      plain(res).end(
        req.method === "HEAD" ? undefined : `${JSON.stringify({ error: "this build ships no OpenAPI document (docs/openapi.json)" })}\n`,
      );
      return true;
    }
    // Changes only with a new build: let clients revalidate rather than keep it forever.
    plain(res).writeHead(200, { "content-type": "application/json", "cache-control": "no-cache" });
    plain(res).end(req.method === "HEAD" ? undefined : text);
    return true;
  };
}
