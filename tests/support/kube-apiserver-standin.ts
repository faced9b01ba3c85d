/**
 * A STAND-IN for the core Kubernetes kinds the operator uses and Kubernetes' real CRD API server
 * (tests/support/crd-apiserver.ts) does not serve: Secrets, ConfigMaps, Events, coordination
 * Leases and apps Deployments. Custom resources and CRDs are served by the real server; the two
 * are joined behind one URL by KubeRouter (tests/support/kube-cluster.ts), so the operator runs
 * with one ordinary kubeconfig and has no test-only branch.
 *
 * It speaks the subset of the API the operator uses for these kinds, with the semantics that
 * matter to a controller: list with a collection resourceVersion and label selectors; watch
 * from a resourceVersion (ADDED/MODIFIED/DELETED in order); get; create (409 AlreadyExists);
 * update with optimistic concurrency (409 Conflict on a stale resourceVersion); JSON merge
 * patch (strategic merge patch is treated as a merge patch: enough for annotations and data
 * maps); delete. Not implemented: RBAC, admission, field managers, garbage collection.
 * Injected write failures and dropped watches are the router's (KubeRouter).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

type Obj = Record<string, any>;

interface ResourceType {
  /** "api/v1" or "apis/<group>/<version>". */
  prefix: string;
  apiVersion: string;
  kind: string;
  plural: string;
}

interface WatchEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
}

interface Watcher {
  type: ResourceType;
  namespace: string | undefined;
  selector: Record<string, string>;
  res: http.ServerResponse;
}

const TYPES: ResourceType[] = [
  { prefix: "api/v1", apiVersion: "v1", kind: "Secret", plural: "secrets" },
  { prefix: "api/v1", apiVersion: "v1", kind: "ConfigMap", plural: "configmaps" },
  { prefix: "api/v1", apiVersion: "v1", kind: "Event", plural: "events" },
  { prefix: "apis/coordination.k8s.io/v1", apiVersion: "coordination.k8s.io/v1", kind: "Lease", plural: "leases" },
  { prefix: "apis/apps/v1", apiVersion: "apps/v1", kind: "Deployment", plural: "deployments" },
];

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

const clone = <T>(v: T): T => structuredClone(v);

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return clone(patch);
  const out: Obj = target && typeof target === "object" && !Array.isArray(target) ? clone(target as Obj) : {};
  for (const [k, v] of Object.entries(patch as Obj)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function parseSelector(raw: string | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  for (const part of raw.split(",")) {
    const [k, v] = part.split("=");
    if (k) out[k.trim()] = (v ?? "").trim();
  }
  return out;
}

function matches(obj: Obj, selector: Record<string, string>): boolean {
  const labels: Record<string, string> = obj.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The stand-in server. Start it with {@link KubeApiServerStandin.start}. */
export class KubeApiServerStandin {
  /** Bearer token the kubeconfig carries; other tokens get 401. */
  readonly token = `standin-${randomBytes(8).toString("hex")}`;
  private readonly objects = new Map<string, Obj>();
  private readonly log: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  private server!: http.Server;
  /** Base URL, e.g. http://127.0.0.1:41234. */
  url = "";

  /** Starts a stand-in on a free loopback port. */
  static async start(): Promise<KubeApiServerStandin> {
    const s = new KubeApiServerStandin();
    s.server = http.createServer((req, res) => void s.handle(req, res));
    await new Promise<void>((resolve) => s.server.listen(0, "127.0.0.1", resolve));
    s.url = `http://127.0.0.1:${(s.server.address() as AddressInfo).port}`;
    return s;
  }

  /** A kubeconfig (JSON is YAML) pointing at this server with its token, default namespace `namespace`. */
  kubeconfig(namespace = "default"): string {
    return JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // Plain HTTP on loopback: client-node refuses http:// unless TLS verification is off.
      clusters: [{ name: "standin", cluster: { server: this.url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "nexus-operator", user: { token: this.token } }],
      contexts: [{ name: "standin", context: { cluster: "standin", user: "nexus-operator", namespace } }],
      "current-context": "standin",
    });
  }

  /** Writes {@link kubeconfig} to `<dir>/kubeconfig` and returns the path. */
  writeKubeconfig(dir: string, namespace = "default"): string {
    const path = join(dir, "kubeconfig");
    writeFileSync(path, this.kubeconfig(namespace));
    return path;
  }

  /** Stops the server and ends every watch. */
  async close(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- direct access for tests (as `kubectl` would do) ------------------------------------

  /** Reads an object (a copy), or undefined. `plural` e.g. "secrets", "configmaps". */
  get(plural: string, namespace: string | undefined, name: string): Obj | undefined {
    const o = this.objects.get(this.key(this.typeByPlural(plural), namespace, name));
    return o ? clone(o) : undefined;
  }

  /** Lists objects of a kind (copies), optionally in one namespace. */
  list(plural: string, namespace?: string): Obj[] {
    const type = this.typeByPlural(plural);
    return [...this.objects.entries()].filter(([k]) => k.startsWith(`${type.plural}|${namespace ?? ""}`)).map(([, o]) => clone(o));
  }

  /** Creates an object, or merges it into the existing one (JSON merge patch semantics). */
  apply(obj: Obj): Obj {
    const type = this.typeFor(String(obj.apiVersion), String(obj.kind));
    const namespace = obj.metadata?.namespace;
    const existing = this.objects.get(this.key(type, namespace, obj.metadata?.name));
    if (!existing) return this.createObject(type, namespace, clone(obj));
    return this.storeUpdate(type, existing, mergePatch(existing, obj) as Obj);
  }

  /** Deletes an object as `kubectl delete` would. */
  delete(plural: string, namespace: string | undefined, name: string): void {
    this.deleteObject(this.typeByPlural(plural), namespace, name);
  }

  /** Every version an object went through, oldest first (from the watch history). */
  history(plural: string, namespace: string | undefined, name: string): Obj[] {
    const type = this.typeByPlural(plural);
    return this.log
      .filter((ev) => ev.object.kind === type.kind && ev.object.metadata?.name === name && ev.object.metadata?.namespace === namespace)
      .map((ev) => clone(ev.object));
  }

  // ---- store --------------------------------------------------------------------------------

  private typeByPlural(plural: string): ResourceType {
    const t = TYPES.find((x) => x.plural === plural);
    if (!t) throw new Error(`stand-in: no resource type ${plural} (custom resources live on the real CRD API server)`);
    return t;
  }

  private typeFor(apiVersion: string, kind: string): ResourceType {
    const t = TYPES.find((x) => x.apiVersion === apiVersion && x.kind === kind);
    if (!t) throw new Error(`stand-in: no resource type for ${apiVersion} ${kind}`);
    return t;
  }

  private key(type: ResourceType, namespace: string | undefined, name: string): string {
    return `${type.plural}|${namespace ?? ""}|${name}`;
  }

  private nextRv(): string {
    this.rv += 1;
    return String(this.rv);
  }

  private emit(type: ResourceType, event: WatchEvent["type"], object: Obj): void {
    const ev: WatchEvent = { rv: Number(object.metadata.resourceVersion), type: event, object: clone(object) };
    this.log.push(ev);
    for (const w of this.watchers) {
      if (w.type !== type) continue;
      if (w.namespace && w.namespace !== object.metadata.namespace) continue;
      if (!matches(object, w.selector)) continue;
      w.res.write(`${JSON.stringify({ type: ev.type, object: ev.object })}\n`);
    }
  }

  private createObject(type: ResourceType, namespace: string | undefined, body: Obj): Obj {
    const meta: Obj = { ...(body.metadata ?? {}) };
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomBytes(3).toString("hex")}`;
    if (!meta.name) throw new HttpError(422, "Invalid", "metadata.name: Required value");
    const ns = namespace ?? meta.namespace ?? "default";
    const key = this.key(type, ns, meta.name);
    if (this.objects.has(key)) throw new HttpError(409, "AlreadyExists", `${type.plural} "${meta.name}" already exists`);
    delete meta.resourceVersion;
    const obj: Obj = {
      ...clone(body),
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: {
        ...meta,
        namespace: ns,
        uid: randomUUID(),
        creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        resourceVersion: this.nextRv(),
      },
    };
    this.objects.set(key, obj);
    this.emit(type, "ADDED", obj);
    return clone(obj);
  }

  /** Stores `next` as the new version of `current` (server-owned metadata kept). */
  private storeUpdate(type: ResourceType, current: Obj, next: Obj): Obj {
    const updated: Obj = { ...clone(next), apiVersion: type.apiVersion, kind: type.kind };
    updated.metadata = {
      ...(updated.metadata ?? {}),
      name: current.metadata.name,
      namespace: current.metadata.namespace,
      uid: current.metadata.uid,
      creationTimestamp: current.metadata.creationTimestamp,
      resourceVersion: current.metadata.resourceVersion,
    };
    if (JSON.stringify(updated) === JSON.stringify(current)) return clone(current);
    updated.metadata.resourceVersion = this.nextRv();
    this.objects.set(this.key(type, current.metadata.namespace, current.metadata.name), updated);
    this.emit(type, "MODIFIED", updated);
    return clone(updated);
  }

  private current(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const o = this.objects.get(this.key(type, namespace, name));
    if (!o) throw new HttpError(404, "NotFound", `${type.plural} "${name}" not found`);
    return o;
  }

  private checkRv(current: Obj, given: unknown): void {
    if (given !== undefined && given !== null && given !== "" && String(given) !== current.metadata.resourceVersion) {
      throw new HttpError(
        409,
        "Conflict",
        `Operation cannot be fulfilled on ${current.kind} "${current.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
      );
    }
  }

  private deleteObject(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const current = this.current(type, namespace, name);
    this.objects.delete(this.key(type, namespace, name));
    const gone = clone(current);
    gone.metadata.resourceVersion = this.nextRv();
    this.emit(type, "DELETED", gone);
    return gone;
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private route(pathname: string): { type: ResourceType; namespace?: string; name?: string } {
    const parts = pathname.split("/").filter(Boolean);
    const prefixLen = parts[0] === "api" ? 2 : parts[0] === "apis" ? 3 : 0;
    if (prefixLen === 0) throw new HttpError(404, "NotFound", `no route ${pathname}`);
    const prefix = parts.slice(0, prefixLen).join("/");
    let rest = parts.slice(prefixLen);
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const type = TYPES.find((t) => t.prefix === prefix && t.plural === rest[0]);
    if (!type || rest.length > 2) throw new HttpError(404, "NotFound", `the server could not find the requested resource (${pathname})`);
    return { type, ...(namespace ? { namespace } : {}), ...(rest[1] ? { name: rest[1] } : {}) };
  }

  private async readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  private send(res: http.ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(body));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const method = req.method ?? "GET";
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) throw new HttpError(401, "Unauthorized", "Unauthorized");
      const { type, namespace, name } = this.route(url.pathname);
      if (method === "GET" && !name) {
        if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
          this.watch(type, namespace, url, res);
          return;
        }
        const selector = parseSelector(url.searchParams.get("labelSelector"));
        const items = this.list(type.plural, namespace).filter((o) => matches(o, selector));
        this.send(res, 200, {
          apiVersion: type.apiVersion,
          kind: `${type.kind}List`,
          metadata: { resourceVersion: String(this.rv) },
          items,
        });
        return;
      }
      if (method === "GET" && name) {
        this.send(res, 200, clone(this.current(type, namespace, name)));
        return;
      }
      const raw = await this.readBody(req);
      const contentType = String(req.headers["content-type"] ?? "application/json").split(";")[0];
      if (method === "POST" && !name) {
        this.send(res, 201, this.createObject(type, namespace, JSON.parse(raw) as Obj));
      } else if (method === "PUT" && name) {
        const body = JSON.parse(raw) as Obj;
        const current = this.current(type, namespace, name);
        this.checkRv(current, body.metadata?.resourceVersion);
        this.send(res, 200, this.storeUpdate(type, current, body));
      } else if (method === "PATCH" && name) {
        if (contentType !== "application/merge-patch+json" && contentType !== "application/strategic-merge-patch+json") {
          throw new HttpError(415, "UnsupportedMediaType", `the stand-in takes merge patches only, not ${contentType}`);
        }
        const current = this.current(type, namespace, name);
        const patch = JSON.parse(raw) as Obj;
        this.checkRv(current, patch?.metadata?.resourceVersion);
        this.send(res, 200, this.storeUpdate(type, current, mergePatch(current, patch) as Obj));
      } else if (method === "DELETE" && name) {
        this.send(res, 200, this.deleteObject(type, namespace, name));
      } else {
        throw new HttpError(405, "MethodNotAllowed", `${method} not allowed on ${url.pathname}`);
      }
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, "InternalError", err instanceof Error ? err.message : String(err));
      this.send(res, e.code, {
        kind: "Status",
        apiVersion: "v1",
        metadata: {},
        status: "Failure",
        message: e.message,
        reason: e.reason,
        code: e.code,
      });
    }
  }

  private watch(type: ResourceType, namespace: string | undefined, url: URL, res: http.ServerResponse): void {
    const selector = parseSelector(url.searchParams.get("labelSelector"));
    const rvParam = url.searchParams.get("resourceVersion");
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    // A real API server sends the headers at once; clients wait for them before watching.
    res.flushHeaders();
    const write = (t: string, object: Obj) => res.write(`${JSON.stringify({ type: t, object })}\n`);
    if (!rvParam || rvParam === "0") {
      for (const o of this.list(type.plural, namespace)) if (matches(o, selector)) write("ADDED", o);
    } else {
      const from = Number(rvParam);
      for (const ev of this.log) {
        if (ev.rv <= from || ev.object.kind !== type.kind || ev.object.apiVersion !== type.apiVersion) continue;
        if (namespace && ev.object.metadata.namespace !== namespace) continue;
        if (matches(ev.object, selector)) write(ev.type, ev.object);
      }
    }
    const watcher: Watcher = { type, namespace, selector, res };
    this.watchers.add(watcher);
    const timeout = Number(url.searchParams.get("timeoutSeconds") ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on("close", () => {
      if (timer) clearTimeout(timer);
      this.watchers.delete(watcher);
    });
  }
}
