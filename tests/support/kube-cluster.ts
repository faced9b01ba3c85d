/**
 * One test "cluster" for the operator: Kubernetes' real CRD API server (nexus.dev custom
 * resources and CustomResourceDefinitions) and the stand-in (Secrets, ConfigMaps, Events,
 * Leases, Deployments — which the real server does not serve), joined behind one URL by
 * {@link KubeRouter}, with the operations a test needs, as kubectl would do them:
 * get, list, apply (create, or a JSON merge patch of what is given), delete.
 *
 * Test hooks: {@link KubeCluster.failNextWrites} and {@link KubeCluster.closeWatches} act in
 * the router (for either server); {@link KubeCluster.expireWatches} ends the watches and
 * compacts the real etcd (start with `compactable: true`, so watches are served by etcd and
 * see it), so resumed watches get 410 Expired.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { type CrdApiServer, KubeRouter, type RoutedRequest, startCrdApiServer, type WriteMatch } from "./crd-apiserver.js";
import { KubeApiServerStandin } from "./kube-apiserver-standin.js";

type Obj = Record<string, any>;

/** Kinds the stand-in serves, by plural. */
const STANDIN_PLURALS = new Set(["secrets", "configmaps", "events", "leases", "deployments"]);
/** API paths of the kinds the real server serves, by plural. */
const REAL_KINDS: Record<string, { prefix: string; namespaced: boolean }> = {
  tenants: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  quotas: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  failovers: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  senderapps: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  destinations: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  workflows: { prefix: "/apis/nexus.dev/v1alpha1", namespaced: true },
  customresourcedefinitions: { prefix: "/apis/apiextensions.k8s.io/v1", namespaced: false },
};
const PLURAL_OF: Record<string, string> = {
  Tenant: "tenants",
  Quota: "quotas",
  Failover: "failovers",
  SenderApp: "senderapps",
  Destination: "destinations",
  Workflow: "workflows",
  CustomResourceDefinition: "customresourcedefinitions",
};

/** Options of {@link KubeCluster.start}. */
export interface KubeClusterOptions {
  /** Serve watches from etcd (no watch cache), so {@link KubeCluster.expireWatches} yields 410 Expired. */
  compactable?: boolean;
}

/** The real CRD API server and the stand-in as one cluster. */
export class KubeCluster {
  private constructor(
    readonly real: CrdApiServer,
    readonly standin: KubeApiServerStandin,
    readonly router: KubeRouter,
  ) {}

  /** Starts etcd + the CRD API server (data under `dir`), the stand-in and the router. */
  static async start(dir: string, options: KubeClusterOptions = {}): Promise<KubeCluster> {
    const real = await startCrdApiServer(path.join(dir, `apiserver-${randomBytes(3).toString("hex")}`), {
      watchCache: !options.compactable,
    });
    const standin = await KubeApiServerStandin.start();
    const router = await KubeRouter.start(real.url, standin);
    return new KubeCluster(real, standin, router);
  }

  /** Writes a kubeconfig for the cluster (the router) to `<dir>/kubeconfig` and returns its path. */
  writeKubeconfig(dir: string, namespace = "default"): string {
    return this.router.writeKubeconfig(dir, namespace);
  }

  /** Every request the operator (or a test) sent, oldest first, with where it went. */
  get requests(): RoutedRequest[] {
    return this.router.routed;
  }

  private url(plural: string, namespace: string | undefined, name?: string): string {
    const kind = REAL_KINDS[plural];
    if (!kind) throw new Error(`KubeCluster: no kind ${plural}`);
    const ns = kind.namespaced && namespace ? `/namespaces/${namespace}` : "";
    return `${this.router.url}${kind.prefix}${ns}/${plural}${name ? `/${name}` : ""}`;
  }

  private async call(
    method: string,
    url: string,
    body?: unknown,
    contentType = "application/json",
  ): Promise<{ status: number; body: Obj }> {
    const res = await fetch(url, {
      method,
      headers: { "content-type": contentType, accept: "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Obj) : {} };
  }

  /** Reads an object, or undefined when it does not exist. */
  async get(plural: string, namespace: string | undefined, name: string): Promise<Obj | undefined> {
    if (STANDIN_PLURALS.has(plural)) return this.standin.get(plural, namespace, name);
    const r = await this.call("GET", this.url(plural, namespace, name));
    if (r.status === 404) return undefined;
    if (r.status !== 200) throw new Error(`GET ${plural}/${name}: ${r.status} ${r.body.message ?? ""}`);
    return r.body;
  }

  /** Lists objects of a kind, in one namespace or all. */
  async list(plural: string, namespace?: string): Promise<Obj[]> {
    if (STANDIN_PLURALS.has(plural)) return this.standin.list(plural, namespace);
    const r = await this.call("GET", this.url(plural, namespace));
    if (r.status !== 200) throw new Error(`LIST ${plural}: ${r.status} ${r.body.message ?? ""}`);
    return (r.body.items ?? []) as Obj[];
  }

  /**
   * Creates the object, or — when it exists — JSON-merge-patches it with what is given (`null`
   * removes a field), as `kubectl create` / `kubectl patch --type=merge` would. Throws with the
   * server's message when the server refuses (e.g. a CEL rule).
   */
  async apply(obj: Obj): Promise<Obj> {
    const plural = PLURAL_OF[String(obj.kind)];
    if (!plural) return this.standin.apply(obj);
    const { namespace, name } = obj.metadata ?? {};
    const existing = await this.call("GET", this.url(plural, namespace, name));
    const r =
      existing.status === 404
        ? await this.call("POST", this.url(plural, namespace), obj)
        : await this.call("PATCH", this.url(plural, namespace, name), obj, "application/merge-patch+json");
    if (r.status >= 300) throw new Error(`apply ${plural}/${name}: ${r.status} ${r.body.message ?? JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Deletes an object (finalizers are honoured). */
  async delete(plural: string, namespace: string | undefined, name: string): Promise<void> {
    if (STANDIN_PLURALS.has(plural)) return this.standin.delete(plural, namespace, name);
    const r = await this.call("DELETE", this.url(plural, namespace, name));
    if (r.status >= 300 && r.status !== 404) throw new Error(`DELETE ${plural}/${name}: ${r.status} ${r.body.message ?? ""}`);
  }

  /** Every version a stand-in object went through (ConfigMaps, Leases, …), oldest first. */
  history(plural: string, namespace: string | undefined, name: string): Obj[] {
    if (!STANDIN_PLURALS.has(plural)) throw new Error(`KubeCluster: history only of stand-in kinds, not ${plural}`);
    return this.standin.history(plural, namespace, name);
  }

  /** The next `count` writes matching `match` are answered with `code` (default 409). */
  failNextWrites(match: WriteMatch, count = 1, code = 409): void {
    this.router.failNextWrites(match, count, code);
  }

  /** Ends every open watch (clients reconnect from their last resourceVersion). */
  closeWatches(): void {
    this.router.closeWatches();
  }

  /**
   * Ends every open watch and compacts etcd before any client can watch again, so every
   * resumed watch gets 410 Expired: no event reaches a watcher between the compaction and the
   * break (which would move its resourceVersion past the compacted revision), and no watch
   * re-opened in between survives.
   */
  async expireWatches(): Promise<void> {
    const release = this.router.holdWatches();
    try {
      this.router.closeWatches();
      await this.real.compact();
    } finally {
      release();
    }
  }

  async close(): Promise<void> {
    await this.router.close();
    await this.standin.close();
    await this.real.stop();
  }
}
