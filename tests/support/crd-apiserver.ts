/**
 * A REAL Kubernetes API server for custom resources in the tests: Kubernetes' own
 * `k8s.io/apiextensions-apiserver` (the code kube-apiserver serves every CRD with) on a real
 * etcd, built by scripts/crd-apiserver/ (`bash scripts/crd-apiserver/provide.sh` puts the
 * binaries in .ci-tools/crd-apiserver/bin). It enforces what users' clusters enforce for our
 * CRDs: OpenAPI and CEL validation, defaulting, pruning, the status subresource, printer
 * columns, server-side apply with field ownership, watch bookmarks and 410 Expired.
 *
 * It serves no core kinds (Secrets, ConfigMaps, Events), no Leases and no Deployments; those
 * come from the stand-in (tests/support/kube-apiserver-standin.ts). {@link KubeRouter} joins
 * the two behind one URL, as one cluster, so the operator runs with a single kubeconfig.
 *
 * Suites that need it use {@link describeWithCrdApiServer}: they skip with a line saying so
 * when the binaries are missing, and fail under NEXUS_REQUIRE_SERVICES=1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import path from "node:path";
import { describe } from "vitest";

/** Where provide.sh puts the binaries (override with NEXUS_CRD_APISERVER_BIN). */
export const CRD_APISERVER_BIN = process.env.NEXUS_CRD_APISERVER_BIN ?? path.resolve(".ci-tools/crd-apiserver/bin");

const binariesPresent = existsSync(path.join(CRD_APISERVER_BIN, "crd-apiserver")) && existsSync(path.join(CRD_APISERVER_BIN, "etcd"));

function gate() {
  if (binariesPresent) return describe;
  if (process.env.NEXUS_REQUIRE_SERVICES === "1") {
    throw new Error(
      `the CRD API server binaries are missing in ${CRD_APISERVER_BIN} and NEXUS_REQUIRE_SERVICES=1: run bash scripts/crd-apiserver/provide.sh`,
    );
  }
  console.warn(
    `[nexus tests] skipping suites that need the real CRD API server: no binaries in ${CRD_APISERVER_BIN} (bash scripts/crd-apiserver/provide.sh)`,
  );
  return describe.skip;
}

/** `describe` for suites that need the real CRD API server. */
export const describeWithCrdApiServer = gate();

/** Whether the binaries are there (for file-level hooks of suites gated by {@link describeWithCrdApiServer}). */
export const crdApiServerAvailable = binariesPresent;

/** A free loopback TCP port (closed again before it is returned). */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  child: ChildProcess,
  log: () => string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what}: process exited with ${child.exitCode}:\n${log().slice(-3000)}`);
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms:\n${log().slice(-3000)}`);
}

function get(url: string): Promise<{ status: number; body: string }> {
  const lib = url.startsWith("https:") ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString("utf8")));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

function spawnLogged(bin: string, args: string[]): { child: ChildProcess; log: () => string } {
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString("utf8")).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { child, log: () => out };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

/** A running etcd + crd-apiserver pair. */
export interface CrdApiServer {
  /** https://127.0.0.1:<port> (self-signed certificate; anonymous, AlwaysAllow). */
  url: string;
  /** Writes a kubeconfig for the server itself to `<dir>/kubeconfig-real` and returns its path. */
  writeKubeconfig(dir: string, namespace?: string): string;
  /** The last lines the server printed (for failure messages). */
  log(): string;
  /**
   * Compacts etcd past every resourceVersion handed out so far, as etcd does periodically: a
   * watch resumed from one of them then ends with 410 Expired. Reaches clients directly only when the
   * server runs without its watch cache (`watchCache: false`), which otherwise keeps serving
   * recent history.
   */
  compact(): Promise<void>;
  stop(): Promise<void>;
}

/** Options of {@link startCrdApiServer}. */
export interface CrdApiServerOptions {
  /** The API server's watch cache (default on, as in clusters). Off: watches are served by etcd itself. */
  watchCache?: boolean;
}

/** A kubeconfig (JSON is YAML) for `server`, skipping TLS verification, anonymous token. */
export function kubeconfigFor(server: string, namespace = "default", token = "unused"): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "local", cluster: { server, "insecure-skip-tls-verify": true } }],
    users: [{ name: "user", user: { token } }],
    contexts: [{ name: "local", context: { cluster: "local", user: "user", namespace } }],
    "current-context": "local",
  });
}

/**
 * Starts etcd (no fsync; a test database) and the CRD API server on free loopback ports, data
 * under `dir`, and waits for /readyz (~1 s).
 */
export async function startCrdApiServer(dir: string, options: CrdApiServerOptions = {}): Promise<CrdApiServer> {
  mkdirSync(dir, { recursive: true });
  const [client, peer, secure] = [await freePort(), await freePort(), await freePort()];
  const etcd = spawnLogged(path.join(CRD_APISERVER_BIN, "etcd"), [
    "--data-dir",
    path.join(dir, "etcd"),
    "--listen-client-urls",
    `http://127.0.0.1:${client}`,
    "--advertise-client-urls",
    `http://127.0.0.1:${client}`,
    "--listen-peer-urls",
    `http://127.0.0.1:${peer}`,
    "--initial-advertise-peer-urls",
    `http://127.0.0.1:${peer}`,
    "--initial-cluster",
    `default=http://127.0.0.1:${peer}`,
    "--unsafe-no-fsync",
    "--log-level",
    "error",
  ]);
  try {
    await waitFor("etcd", async () => (await get(`http://127.0.0.1:${client}/health`)).status === 200, etcd.child, etcd.log);
  } catch (err) {
    await stopChild(etcd.child);
    throw err;
  }
  const api = spawnLogged(path.join(CRD_APISERVER_BIN, "crd-apiserver"), [
    `--etcd-servers=http://127.0.0.1:${client}`,
    "--bind-address=127.0.0.1",
    `--secure-port=${secure}`,
    `--cert-dir=${path.join(dir, "certs")}`,
    ...(options.watchCache === false ? ["--watch-cache=false"] : []),
  ]);
  const url = `https://127.0.0.1:${secure}`;
  try {
    await waitFor("crd-apiserver", async () => (await get(`${url}/readyz`)).body === "ok", api.child, api.log);
  } catch (err) {
    await stopChild(api.child);
    await stopChild(etcd.child);
    throw err;
  }
  return {
    url,
    writeKubeconfig(kdir: string, namespace = "default") {
      const p = path.join(kdir, "kubeconfig-real");
      writeFileSync(p, kubeconfigFor(url, namespace));
      return p;
    },
    log: api.log,
    async compact() {
      // etcd's JSON gateway: the current revision from any range read, then compact to it.
      const etcd = `http://127.0.0.1:${client}/v3/kv`;
      const post = async (p: string, body: unknown) => {
        const res = await fetch(`${etcd}/${p}`, { method: "POST", body: JSON.stringify(body) });
        if (!res.ok) throw new Error(`etcd ${p}: ${res.status} ${await res.text()}`);
        return (await res.json()) as { header?: { revision?: string } };
      };
      // Two writes of etcd's own first move the revision past every resourceVersion handed out
      // so far: a watch from resourceVersion R starts at revision R+1, and etcd still serves a
      // watch that starts exactly at the compacted revision.
      const marker = { key: Buffer.from("/nexus-tests/compaction-marker").toString("base64"), value: Buffer.from("x").toString("base64") };
      await post("put", marker);
      const put = await post("put", marker);
      await post("compaction", { revision: put.header?.revision, physical: true });
    },
    async stop() {
      await stopChild(api.child);
      await stopChild(etcd.child);
    },
  };
}

/** One request the router passed on. */
export interface RoutedRequest {
  method: string;
  /** Path and query. */
  path: string;
  contentType: string | undefined;
  to: "real" | "standin";
}

/** Matches writes for {@link KubeRouter.failNextWrites}. */
export interface WriteMatch {
  plural: string;
  name?: string;
  /** Only writes to this subresource ("status") or the main resource (""); default any. */
  subresource?: string;
  methods?: string[];
}

/** Path prefixes the real server answers; everything else goes to the stand-in. */
const REAL_PREFIXES = ["/apis/nexus.dev/", "/apis/nexus.dev?", "/apis/apiextensions.k8s.io/", "/openapi/", "/version"];

/**
 * One cluster URL in front of two servers: `/apis/nexus.dev/**`, `/apis/apiextensions.k8s.io/**`
 * and OpenAPI go to the real CRD API server, every other path (core/v1 Secrets, ConfigMaps,
 * Events, coordination Leases, apps Deployments) to the stand-in with its bearer token.
 * Discovery (`/api`, `/apis`) is merged from both, so kubectl sees one cluster. Streams
 * (watches) are piped through unbuffered.
 */
export class KubeRouter {
  /** Every request routed, oldest first: where it went. */
  readonly routed: RoutedRequest[] = [];
  private failures: { match: WriteMatch; code: number; left: number }[] = [];
  private readonly watches = new Set<http.ServerResponse>();
  private watchHold: Promise<void> | undefined;
  private server!: http.Server;
  url = "";

  private constructor(
    private readonly real: string,
    private readonly standin: { url: string; token: string },
  ) {}

  /** Starts a router on a free loopback port. */
  static async start(realUrl: string, standin: { url: string; token: string }): Promise<KubeRouter> {
    const r = new KubeRouter(realUrl, standin);
    r.server = http.createServer((req, res) => void r.handle(req, res));
    await new Promise<void>((resolve) => r.server.listen(0, "127.0.0.1", resolve));
    r.url = `http://127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  /** Writes a kubeconfig for the router to `<dir>/<file>` and returns its path. */
  writeKubeconfig(dir: string, namespace = "default", file = "kubeconfig"): string {
    const p = path.join(dir, file);
    writeFileSync(p, kubeconfigFor(this.url, namespace));
    return p;
  }

  /**
   * Test hook: the next `count` writes matching `match` are answered with `code` (default 409
   * Conflict, as if another writer had won the race) instead of reaching the server.
   */
  failNextWrites(match: WriteMatch, count = 1, code = 409): void {
    this.failures.push({ match, code, left: count });
  }

  /** Test hook: ends every open watch, as an API server restart or a load balancer timeout does. */
  closeWatches(): void {
    for (const res of this.watches) res.destroy();
    this.watches.clear();
  }

  /**
   * Test hook: new watch requests wait (are not forwarded) until the returned function is
   * called, so a test can end the open watches and change the server before any client
   * watches again.
   */
  holdWatches(): () => void {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    this.watchHold = held;
    return () => {
      if (this.watchHold === held) this.watchHold = undefined;
      release();
    };
  }

  async close(): Promise<void> {
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(to: "real" | "standin", req: http.IncomingMessage, res: http.ServerResponse): void {
    const base = new URL(to === "real" ? this.real : this.standin.url);
    const headers = { ...req.headers, host: base.host };
    if (to === "standin") headers.authorization = `Bearer ${this.standin.token}`;
    else delete headers.authorization;
    const lib = base.protocol === "https:" ? https : http;
    const upstream = lib.request(
      { host: base.hostname, port: base.port, method: req.method, path: req.url, headers, rejectUnauthorized: false },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        res.flushHeaders();
        up.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`router: ${err.message}`);
    });
    res.on("close", () => upstream.destroy());
    req.pipe(upstream);
  }

  private async fetchJson(base: string, p: string, token?: string): Promise<any> {
    const lib = base.startsWith("https:") ? https : http;
    return new Promise((resolve, reject) => {
      const r = lib.get(
        `${base}${p}`,
        { rejectUnauthorized: false, headers: { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) } },
        (res) => {
          let body = "";
          res.on("data", (c: Buffer) => (body += c.toString("utf8")));
          res.on("end", () => {
            try {
              resolve(JSON.parse(body));
            } catch {
              resolve(undefined);
            }
          });
        },
      );
      r.on("error", reject);
    });
  }

  private static readonly STANDIN_GROUPS: Record<string, { kind: string; plural: string; namespaced: boolean }[]> = {
    v1: [
      { kind: "Secret", plural: "secrets", namespaced: true },
      { kind: "ConfigMap", plural: "configmaps", namespaced: true },
      { kind: "Event", plural: "events", namespaced: true },
    ],
    "coordination.k8s.io/v1": [{ kind: "Lease", plural: "leases", namespaced: true }],
    "apps/v1": [{ kind: "Deployment", plural: "deployments", namespaced: true }],
  };

  /** Discovery for what the stand-in serves (it has none of its own), merged with the real server's. */
  private async discovery(pathname: string, res: http.ServerResponse): Promise<boolean> {
    const verbs = ["create", "delete", "get", "list", "patch", "update", "watch"];
    const resourceList = (gv: string) => ({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: gv,
      resources: (KubeRouter.STANDIN_GROUPS[gv] ?? []).map((r) => ({
        name: r.plural,
        singularName: "",
        namespaced: r.namespaced,
        kind: r.kind,
        verbs,
      })),
    });
    const send = (body: unknown) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (pathname === "/api") {
      send({
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: "127.0.0.1" }],
      });
      return true;
    }
    if (pathname === "/api/v1") {
      send(resourceList("v1"));
      return true;
    }
    if (pathname === "/apis/coordination.k8s.io/v1" || pathname === "/apis/apps/v1") {
      send(resourceList(pathname.slice("/apis/".length)));
      return true;
    }
    if (pathname === "/apis") {
      const real = (await this.fetchJson(this.real, "/apis")) ?? { kind: "APIGroupList", apiVersion: "v1", groups: [] };
      for (const g of ["coordination.k8s.io", "apps"]) {
        const gv = { groupVersion: `${g}/v1`, version: "v1" };
        real.groups.push({ name: g, versions: [gv], preferredVersion: gv });
      }
      send(real);
      return true;
    }
    return false;
  }

  /** The injected failure for this write, if one matches (resource paths: …/<plural>[/<name>[/<subresource>]]). */
  private injected(method: string, pathname: string): number | undefined {
    if (method === "GET") return undefined;
    const parts = pathname.split("/").filter(Boolean);
    const i = parts.findIndex((x, k) => k >= 2 && this.failures.some((f) => f.match.plural === x));
    if (i < 0) return undefined;
    const [plural, name, subresource] = [parts[i], parts[i + 1], parts[i + 2] ?? ""];
    const f = this.failures.find(
      (x) =>
        x.left > 0 &&
        x.match.plural === plural &&
        (x.match.name === undefined || x.match.name === name) &&
        (x.match.subresource === undefined || x.match.subresource === subresource) &&
        (x.match.methods === undefined || x.match.methods.includes(method)),
    );
    if (!f) return undefined;
    f.left -= 1;
    return f.code;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const p = req.url ?? "/";
    const pathname = p.split("?")[0] ?? "/";
    const method = req.method ?? "GET";
    const to =
      REAL_PREFIXES.some((x) => p.startsWith(x)) || pathname === "/apis/nexus.dev" || pathname === "/apis/apiextensions.k8s.io"
        ? "real"
        : "standin";
    const code = this.injected(method, pathname);
    if (code !== undefined) {
      this.routed.push({ method, path: p, contentType: req.headers["content-type"], to });
      req.resume();
      res.writeHead(code, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          code,
          reason: code === 409 ? "Conflict" : "InternalError",
          message: `router: injected ${code} for ${pathname}`,
        }),
      );
      return;
    }
    if (/[?&]watch=(true|1)/.test(p)) {
      if (this.watchHold) await this.watchHold;
      this.watches.add(res);
      res.on("close", () => this.watches.delete(res));
    }
    // kubectl asks for the aggregated discovery document first; plain discovery is enough.
    if ((req.headers.accept ?? "").includes("as=APIGroupDiscoveryList")) req.headers.accept = "application/json";
    if (method === "GET" && (await this.discovery(pathname, res))) {
      this.routed.push({ method, path: p, contentType: undefined, to: "standin" });
      return;
    }
    this.routed.push({ method, path: p, contentType: req.headers["content-type"], to });
    this.forward(to, req, res);
  }
}
