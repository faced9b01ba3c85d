import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import type { NodeRequest, NodeResponse } from "./node-http.js";
import { plain } from "./node-http.js";
import type { HttpRoute } from "./service-module.js";

/** Where the console is served. */
export const CONSOLE_PATH = "/console";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};
const COMPRESSIBLE = new Set([".html", ".js", ".css", ".svg", ".json", ".txt"]);

/**
 * The page's security headers: only this origin's scripts, styles, images and API (same
 * origin, so no CORS); no framing; nothing leaks in Referer.
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

interface StaticFile {
  type: string;
  body: Buffer;
  gzip: Buffer | undefined;
  /** Vite's hashed assets never change: cached for a year. */
  immutable: boolean;
}

/**
 * The built console's directory: `dir` when given, else `console/dist` of this installation
 * (found from this file, in the source tree and in the compiled `dist/`).
 */
export function consoleDirectory(dir?: string): string | undefined {
  if (dir) return resolve(dir);
  let at = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(at, "console", "dist");
    if (existsSync(join(candidate, "index.html"))) return candidate;
    at = dirname(at);
  }
  return undefined;
}

function loadFiles(root: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) {
        walk(full);
        continue;
      }
      const ext = extname(name);
      const body = readFileSync(full);
      const rel = relative(root, full).split(sep).join("/");
      files.set(`/${rel}`, {
        type: TYPES[ext] ?? "application/octet-stream",
        body,
        gzip: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body, { level: 9 }) : undefined,
        immutable: rel.startsWith("assets/"),
      });
    }
  };
  walk(root);
  return files;
}

/**
 * Serves the built web console (docs/console.md) at `/console`: the files of `dir` (read once,
 * gzip-compressed once), `index.html` for every page path of the single-page app, hashed
 * assets cached immutably, the page itself never cached. Undefined when there is no built
 * console (`npm run build` builds it); Nexus then serves no `/console`.
 */
export function consoleRoute(dir: string | undefined): HttpRoute | undefined {
  if (dir === undefined || !existsSync(join(dir, "index.html"))) return undefined;
  const files = loadFiles(dir);
  const index = files.get("/index.html")!;
  const send = (req: NodeRequest, res: NodeResponse, file: StaticFile) => {
    const gzip = file.gzip !== undefined && /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    const body = gzip ? file.gzip! : file.body;
    plain(res).writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": file.type,
      "content-length": String(body.length),
      "cache-control": file.immutable ? "public, max-age=31536000, immutable" : "no-cache",
      vary: "accept-encoding",
      ...(gzip ? { "content-encoding": "gzip" } : {}),
    });
    (res as unknown as { end(b?: Buffer): void }).end(req.method === "HEAD" ? undefined : body);
  };
  return {
    path: CONSOLE_PATH,
    prefix: true,
    methods: ["GET", "HEAD"],
    handle(req, res) {
      const path = (req.url ?? "").split("?", 1)[0] ?? "";
      if (path === CONSOLE_PATH) {
        plain(res).writeHead(308, { location: `${CONSOLE_PATH}/` });
        plain(res).end();
        return;
      }
      const rel = path.slice(CONSOLE_PATH.length) || "/";
      const file = files.get(rel);
      if (file !== undefined) return send(req, res, file);
      // A missing asset is a 404; any other path is a page of the app.
      if (rel.startsWith("/assets/") || extname(rel) !== "") {
        plain(res).writeHead(404, { "content-type": "text/plain" });
        plain(res).end("not found\n");
        return;
      }
      send(req, res, index);
    },
  };
}
