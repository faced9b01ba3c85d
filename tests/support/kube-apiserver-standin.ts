/**
 * A STAND-IN for the Kubernetes API server, for the operator's tests.
 *
 * No real API server can run on the development or CI machines, so the operator is tested
 * against this small HTTP server, reached exactly as a cluster would be: through a normal
 * kubeconfig file (server URL + bearer token) loaded by @kubernetes/client-node. The operator's
 * code has no test-only branch.
 *
 * It speaks the subset of the API the operator uses, with the semantics that matter for a
 * controller:
 * - list with a collection resourceVersion; watch from a resourceVersion (ADDED/MODIFIED/DELETED
 *   in order, `410 Gone` once the history was compacted), label selectors;
 * - get, create (409 AlreadyExists), update with optimistic concurrency (409 Conflict on a stale
 *   resourceVersion), delete;
 * - patch: JSON merge patch, JSON patch (RFC 6902 with `test`), strategic merge (treated as a
 *   merge patch: enough for annotations and data maps) and server-side apply (create or merge;
 *   no field ownership);
 * - the status subresource (spec and status are written separately; generation moves only when
 *   the spec changes);
 * - finalizer-gated deletion (deletionTimestamp first, removal once the finalizers are gone);
 * - CustomResourceDefinitions: applying one makes its resources served;
 * - core Secrets, ConfigMaps and Events, coordination Leases, apps Deployments.
 *
 * Not implemented (the real server does them): OpenAPI/CEL validation and defaulting of custom
 * resources, field managers, RBAC, admission, discovery. Tests that need defaults write them.
 *
 * Test hooks (never used by the operator): {@link KubeApiServerStandin.failNextWrites} answers
 * the next matching writes with an error (e.g. 409, as if another writer had won the race),
 * {@link KubeApiServerStandin.closeWatches} ends every open watch, and
 * {@link KubeApiServerStandin.compact} forgets the watch history so a resumed watch gets 410.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";

type Obj = Record<string, any>;

interface ResourceType {
  /** "api/v1" or "apis/<group>/<version>". */
  prefix: string;
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
  status: boolean;
  generation: boolean;
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

/** One request the stand-in answered (for assertions on what the operator did). */
export interface StandinRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  status: number;
}

/** Matches writes for {@link KubeApiServerStandin.failNextWrites}. */
export interface WriteMatch {
  plural: string;
  name?: string;
  /** Only writes to this subresource ("status") or the main resource (""); default any. */
  subresource?: string;
  methods?: string[];
}

const BUILT_IN: ResourceType[] = [
  { prefix: "api/v1", apiVersion: "v1", kind: "Secret", plural: "secrets", namespaced: true, status: false, generation: false },
  { prefix: "api/v1", apiVersion: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true, status: false, generation: false },
  { prefix: "api/v1", apiVersion: "v1", kind: "Event", plural: "events", namespaced: true, status: false, generation: false },
  {
    prefix: "apis/coordination.k8s.io/v1",
    apiVersion: "coordination.k8s.io/v1",
    kind: "Lease",
    plural: "leases",
    namespaced: true,
    status: false,
    generation: false,
  },
  { prefix: "apis/apps/v1", apiVersion: "apps/v1", kind: "Deployment", plural: "deployments", namespaced: true, status: true, generation: true },
  {
    prefix: "apis/apiextensions.k8s.io/v1",
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    plural: "customresourcedefinitions",
    namespaced: false,
    status: true,
    generation: true,
  },
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

function pointer(path: string): string[] {
  if (path === "") return [];
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function jsonPatch(doc: Obj, ops: Obj[]): Obj {
  const out = clone(doc);
  for (const op of ops) {
    const parts = pointer(String(op.path));
    const last = parts.pop();
    let parent: any = out;
    for (const p of parts) {
      if (parent === undefined || parent === null) throw new HttpError(422, "Invalid", `path ${op.path} does not exist`);
      parent = Array.isArray(parent) ? parent[Number(p)] : parent[p];
    }
    if (last === undefined || parent === undefined || parent === null) throw new HttpError(422, "Invalid", `bad path ${op.path}`);
    const isArr = Array.isArray(parent);
    const index = last === "-" ? (isArr ? parent.length : -1) : Number(last);
    switch (op.op) {
      case "test": {
        const cur = isArr ? parent[index] : parent[last];
        if (JSON.stringify(cur) !== JSON.stringify(op.value)) {
          throw new HttpError(422, "Invalid", `test operation failed at ${op.path}`);
        }
        break;
      }
      case "add":
        if (isArr) parent.splice(index, 0, clone(op.value));
        else parent[last] = clone(op.value);
        break;
      case "replace":
        if (isArr) {
          if (index >= parent.length) throw new HttpError(422, "Invalid", `no element at ${op.path}`);
          parent[index] = clone(op.value);
        } else {
          if (!(last in parent)) throw new HttpError(422, "Invalid", `no member at ${op.path}`);
          parent[last] = clone(op.value);
        }
        break;
      case "remove":
        if (isArr) {
          if (index >= parent.length) throw new HttpError(422, "Invalid", `no element at ${op.path}`);
          parent.splice(index, 1);
        } else {
          if (!(last in parent)) throw new HttpError(422, "Invalid", `no member at ${op.path}`);
          delete parent[last];
        }
        break;
      default:
        throw new HttpError(422, "Invalid", `unsupported JSON patch op ${String(op.op)}`);
    }
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

function withoutMetaAndStatus(obj: Obj): string {
  const { metadata: _m, status: _s, ...rest } = obj;
  return JSON.stringify(rest);
}

/** The stand-in server. Start it with {@link KubeApiServerStandin.start}. */
export class KubeApiServerStandin {
  /** Bearer token the kubeconfig carries; other tokens get 401. */
  readonly token = `standin-${randomBytes(8).toString("hex")}`;
  /** Every request answered, oldest first. */
  readonly requests: StandinRequest[] = [];
  private readonly types = new Map<string, ResourceType>();
  private readonly objects = new Map<string, Obj>();
  private readonly log: WatchEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private failures: { match: WriteMatch; code: number; left: number }[] = [];
  private rv = 100;
  private compactedRv = 0;
  private server!: http.Server;
  /** Base URL, e.g. http://127.0.0.1:41234. */
  url = "";

  private constructor() {
    for (const t of BUILT_IN) this.types.set(`${t.prefix}/${t.plural}`, t);
  }

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
    this.closeWatches();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test hooks -------------------------------------------------------------------------

  /** The next `count` writes matching `match` fail with `code` (default 409 Conflict). */
  failNextWrites(match: WriteMatch, count = 1, code = 409): void {
    this.failures.push({ match, code, left: count });
  }

  /** Ends every open watch (clients reconnect from their last resourceVersion). */
  closeWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forgets the watch history: a watch resumed from an older resourceVersion gets 410 Gone. */
  compact(): void {
    // Every resourceVersion handed out so far becomes too old to resume from.
    this.compactedRv = this.rv + 1;
    this.rv += 1;
    this.log.length = 0;
  }

  // ---- direct access for tests (as `kubectl` would do) ------------------------------------

  /** Reads an object (a copy), or undefined. `plural` e.g. "tenants", "secrets". */
  get(plural: string, namespace: string | undefined, name: string): Obj | undefined {
    const type = this.typeByPlural(plural);
    const o = this.objects.get(this.key(type, namespace, name));
    return o ? clone(o) : undefined;
  }

  /** Lists objects of a kind (copies), optionally in one namespace. */
  list(plural: string, namespace?: string): Obj[] {
    const type = this.typeByPlural(plural);
    return [...this.objects.entries()]
      .filter(([k]) => k.startsWith(`${type.prefix}/${type.plural}|${namespace ?? ""}`))
      .map(([, o]) => clone(o));
  }

  /** Creates or merges an object as `kubectl apply` would (server-side apply semantics of this stand-in). */
  apply(obj: Obj): Obj {
    const type = this.typeFor(String(obj.apiVersion), String(obj.kind));
    return this.applyObject(type, obj.metadata?.namespace, clone(obj));
  }

  /** Deletes an object as `kubectl delete` would (finalizers are honoured). */
  delete(plural: string, namespace: string | undefined, name: string): void {
    this.deleteObject(this.typeByPlural(plural), namespace, name);
  }

  /** Every version an object went through since the last {@link compact}, oldest first (from the watch history). */
  history(plural: string, namespace: string | undefined, name: string): Obj[] {
    const type = this.typeByPlural(plural);
    return this.log
      .filter(
        (ev) =>
          ev.object.kind === type.kind &&
          ev.object.apiVersion === type.apiVersion &&
          ev.object.metadata?.name === name &&
          (!type.namespaced || ev.object.metadata?.namespace === namespace),
      )
      .map((ev) => clone(ev.object));
  }

  // ---- store --------------------------------------------------------------------------------

  private typeByPlural(plural: string): ResourceType {
    for (const t of this.types.values()) if (t.plural === plural) return t;
    throw new Error(`stand-in: no resource type ${plural} (apply its CRD first)`);
  }

  private typeFor(apiVersion: string, kind: string): ResourceType {
    for (const t of this.types.values()) if (t.apiVersion === apiVersion && t.kind === kind) return t;
    throw new Error(`stand-in: no resource type for ${apiVersion} ${kind}`);
  }

  private key(type: ResourceType, namespace: string | undefined, name: string): string {
    return `${type.prefix}/${type.plural}|${type.namespaced ? (namespace ?? "") : ""}|${name}`;
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

  private registerCrd(crd: Obj): void {
    const spec = crd.spec ?? {};
    for (const v of spec.versions ?? []) {
      if (!v.served) continue;
      const t: ResourceType = {
        prefix: `apis/${spec.group}/${v.name}`,
        apiVersion: `${spec.group}/${v.name}`,
        kind: spec.names.kind,
        plural: spec.names.plural,
        namespaced: spec.scope !== "Cluster",
        status: Boolean(v.subresources?.status),
        generation: true,
      };
      this.types.set(`${t.prefix}/${t.plural}`, t);
    }
  }

  private createObject(type: ResourceType, namespace: string | undefined, body: Obj): Obj {
    const meta: Obj = { ...(body.metadata ?? {}) };
    if (!meta.name && meta.generateName) meta.name = `${meta.generateName}${randomBytes(3).toString("hex")}`;
    if (!meta.name) throw new HttpError(422, "Invalid", "metadata.name: Required value");
    const ns = type.namespaced ? (namespace ?? meta.namespace ?? "default") : undefined;
    const key = this.key(type, ns, meta.name);
    if (this.objects.has(key)) {
      throw new HttpError(409, "AlreadyExists", `${type.plural} "${meta.name}" already exists`);
    }
    const obj: Obj = { ...clone(body), apiVersion: type.apiVersion, kind: type.kind };
    if (type.status) delete obj.status;
    delete meta.resourceVersion;
    delete meta.deletionTimestamp;
    obj.metadata = {
      ...meta,
      ...(ns ? { namespace: ns } : {}),
      uid: randomUUID(),
      creationTimestamp: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
      resourceVersion: this.nextRv(),
      ...(type.generation ? { generation: 1 } : {}),
    };
    this.objects.set(key, obj);
    if (type.kind === "CustomResourceDefinition") this.registerCrd(obj);
    this.emit(type, "ADDED", obj);
    return clone(obj);
  }

  /** Stores `next` as the new version of `current` (spec/status rules, generation, finalizers). */
  private storeUpdate(type: ResourceType, current: Obj, next: Obj, subresource: string): Obj {
    let updated: Obj;
    if (subresource === "status") {
      updated = { ...clone(current), status: clone(next.status) };
    } else {
      updated = clone(next);
      updated.apiVersion = type.apiVersion;
      updated.kind = type.kind;
      if (type.status) {
        if (current.status === undefined) delete updated.status;
        else updated.status = clone(current.status);
      }
      // Immutable or server-owned metadata.
      const m = updated.metadata ?? {};
      updated.metadata = {
        ...m,
        name: current.metadata.name,
        ...(current.metadata.namespace ? { namespace: current.metadata.namespace } : {}),
        uid: current.metadata.uid,
        creationTimestamp: current.metadata.creationTimestamp,
        ...(current.metadata.deletionTimestamp ? { deletionTimestamp: current.metadata.deletionTimestamp } : {}),
      };
      if (!current.metadata.deletionTimestamp) delete updated.metadata.deletionTimestamp;
      if (current.metadata.generation !== undefined) updated.metadata.generation = current.metadata.generation;
      if (type.generation && withoutMetaAndStatus(updated) !== withoutMetaAndStatus(current)) {
        updated.metadata.generation = (current.metadata.generation ?? 1) + 1;
      }
    }
    updated.metadata.resourceVersion = current.metadata.resourceVersion;
    if (JSON.stringify(updated) === JSON.stringify(current)) return clone(current);
    updated.metadata.resourceVersion = this.nextRv();
    const key = this.key(type, current.metadata.namespace, current.metadata.name);
    if (updated.metadata.deletionTimestamp && (updated.metadata.finalizers ?? []).length === 0) {
      this.objects.delete(key);
      this.emit(type, "DELETED", updated);
      return clone(updated);
    }
    this.objects.set(key, updated);
    if (type.kind === "CustomResourceDefinition") this.registerCrd(updated);
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

  private applyObject(type: ResourceType, namespace: string | undefined, body: Obj, subresource = ""): Obj {
    const name = body.metadata?.name;
    const existing = this.objects.get(this.key(type, namespace ?? body.metadata?.namespace, name));
    if (!existing) return this.createObject(type, namespace ?? body.metadata?.namespace, body);
    const next = mergePatch(existing, body) as Obj;
    return this.storeUpdate(type, existing, next, subresource);
  }

  private deleteObject(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const current = this.current(type, namespace, name);
    if ((current.metadata.finalizers ?? []).length > 0) {
      if (current.metadata.deletionTimestamp) return clone(current);
      const next = clone(current);
      next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, "Z");
      if (type.generation) next.metadata.generation = (current.metadata.generation ?? 1) + 1;
      next.metadata.resourceVersion = this.nextRv();
      this.objects.set(this.key(type, namespace, name), next);
      this.emit(type, "MODIFIED", next);
      return clone(next);
    }
    this.objects.delete(this.key(type, namespace, name));
    const gone = clone(current);
    gone.metadata.resourceVersion = this.nextRv();
    this.emit(type, "DELETED", gone);
    return gone;
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private route(pathname: string): { type: ResourceType; namespace?: string; name?: string; subresource: string } {
    const parts = pathname.split("/").filter(Boolean);
    let prefixLen: number;
    if (parts[0] === "api") prefixLen = 2;
    else if (parts[0] === "apis") prefixLen = 3;
    else throw new HttpError(404, "NotFound", `no route ${pathname}`);
    const prefix = parts.slice(0, prefixLen).join("/");
    let rest = parts.slice(prefixLen);
    let namespace: string | undefined;
    if (rest[0] === "namespaces" && rest.length >= 3) {
      namespace = rest[1];
      rest = rest.slice(2);
    }
    const type = this.types.get(`${prefix}/${rest[0]}`);
    if (!type) throw new HttpError(404, "NotFound", `the server could not find the requested resource (${pathname})`);
    return { type, ...(namespace ? { namespace } : {}), ...(rest[1] ? { name: rest[1] } : {}), subresource: rest[2] ?? "" };
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

  private failure(method: string, type: ResourceType, name: string | undefined, subresource: string): number | undefined {
    const f = this.failures.find(
      (x) =>
        x.left > 0 &&
        x.match.plural === type.plural &&
        (x.match.name === undefined || x.match.name === name) &&
        (x.match.subresource === undefined || x.match.subresource === subresource) &&
        (x.match.methods === undefined || x.match.methods.includes(method)),
    );
    if (!f) return undefined;
    f.left -= 1;
    return f.code;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    const method = req.method ?? "GET";
    const record = (status: number) =>
      this.requests.push({ method, path: url.pathname + (url.search ? url.search : ""), contentType: req.headers["content-type"], status });
    try {
      if (req.headers.authorization !== `Bearer ${this.token}`) {
        throw new HttpError(401, "Unauthorized", "Unauthorized");
      }
      const { type, namespace, name, subresource } = this.route(url.pathname);
      if (method === "GET" && !name) {
        if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
          record(200);
          this.watch(type, namespace, url, res);
          return;
        }
        const selector = parseSelector(url.searchParams.get("labelSelector"));
        const items = this.list(type.plural, namespace).filter((o) => matches(o, selector));
        record(200);
        this.send(res, 200, { apiVersion: type.apiVersion, kind: `${type.kind}List`, metadata: { resourceVersion: String(this.rv) }, items });
        return;
      }
      if (method === "GET" && name) {
        const o = clone(this.current(type, namespace, name));
        record(200);
        this.send(res, 200, o);
        return;
      }
      const writeFailure = this.failure(method, type, name, subresource);
      if (writeFailure !== undefined) {
        throw new HttpError(writeFailure, writeFailure === 409 ? "Conflict" : "InternalError", `stand-in: injected ${writeFailure} for ${type.plural}/${name ?? ""}`);
      }
      const raw = await this.readBody(req);
      const contentType = String(req.headers["content-type"] ?? "application/json").split(";")[0];
      let out: Obj;
      let status = 200;
      if (method === "POST" && !name) {
        out = this.createObject(type, namespace, JSON.parse(raw) as Obj);
        status = 201;
      } else if (method === "PUT" && name) {
        const body = JSON.parse(raw) as Obj;
        const current = this.current(type, namespace, name);
        this.checkRv(current, body.metadata?.resourceVersion);
        out = this.storeUpdate(type, current, body, subresource);
      } else if (method === "PATCH" && name) {
        if (contentType === "application/apply-patch+yaml") {
          const body = parseYaml(raw) as Obj;
          body.metadata = { ...(body.metadata ?? {}), name };
          out = this.applyObject(type, namespace, body, subresource);
        } else {
          const current = this.current(type, namespace, name);
          const patch = JSON.parse(raw) as unknown;
          let next: Obj;
          if (contentType === "application/json-patch+json") {
            if (!Array.isArray(patch)) throw new HttpError(400, "BadRequest", "a JSON patch must be an array");
            next = jsonPatch(current, patch as Obj[]);
          } else if (contentType === "application/merge-patch+json" || contentType === "application/strategic-merge-patch+json") {
            this.checkRv(current, (patch as Obj)?.metadata?.resourceVersion);
            next = mergePatch(current, patch) as Obj;
          } else {
            throw new HttpError(415, "UnsupportedMediaType", `unsupported patch content type ${contentType}`);
          }
          out = this.storeUpdate(type, current, next, subresource);
        }
      } else if (method === "DELETE" && name) {
        out = this.deleteObject(type, namespace, name);
      } else {
        throw new HttpError(405, "MethodNotAllowed", `${method} not allowed on ${url.pathname}`);
      }
      record(status);
      this.send(res, status, out);
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, "InternalError", err instanceof Error ? err.message : String(err));
      record(e.code);
      this.send(res, e.code, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: e.message, reason: e.reason, code: e.code });
    }
  }

  private watch(type: ResourceType, namespace: string | undefined, url: URL, res: http.ServerResponse): void {
    const selector = parseSelector(url.searchParams.get("labelSelector"));
    const rvParam = url.searchParams.get("resourceVersion");
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    // A real API server sends the headers at once; clients wait for them before watching.
    res.flushHeaders();
    const write = (type: string, object: Obj) => res.write(`${JSON.stringify({ type, object })}\n`);
    if (!rvParam || rvParam === "0") {
      for (const o of this.list(type.plural, namespace)) if (matches(o, selector)) write("ADDED", o);
    } else {
      const from = Number(rvParam);
      if (from < this.compactedRv) {
        write("ERROR", { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: `too old resource version: ${from} (${this.compactedRv})` });
        res.end();
        return;
      }
      for (const ev of this.log) {
        if (ev.rv <= from) continue;
        if (this.typeFor(ev.object.apiVersion, ev.object.kind) !== type) continue;
        if (namespace && ev.object.metadata.namespace !== namespace) continue;
        if (!matches(ev.object, selector)) continue;
        write(ev.type, ev.object);
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

