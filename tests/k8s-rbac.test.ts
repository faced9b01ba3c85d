/**
 * The chart's RBAC for the operator grants exactly what the operator's code calls — no more
 * (least privilege), no less (a missing verb is a 403 only a real cluster would show: neither
 * the stand-in nor the CRD API server enforces RBAC). Checked statically: the Kubernetes API
 * calls are read from operator/ sources and mapped to (group, resource, verb); the rules are
 * read from `helm template` for both scopes (cluster-wide and operator.watchNamespace).
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

type Obj = Record<string, any>;

/** Verb of a client-node method by its prefix. */
const VERB: Record<string, string> = { read: "get", list: "list", create: "create", replace: "update", patch: "patch", delete: "delete" };

/** Resource (group/plural) of a client-node method by the kind it names. */
const KIND: Record<string, string> = {
  Secret: "/secrets",
  SecretForAllNamespaces: "/secrets",
  ConfigMap: "/configmaps",
  Event: "/events",
  Lease: "coordination.k8s.io/leases",
  Deployment: "apps/deployments",
  CustomResourceDefinition: "apiextensions.k8s.io/customresourcedefinitions",
};

/** Cluster-scoped kinds whose client-node methods carry no Namespaced/Cluster word. */
const CLUSTER_SCOPED = [
  "CustomResourceDefinition",
  "Namespace",
  "Node",
  "PersistentVolume",
  "ClusterRole",
  "ClusterRoleBinding",
  "StorageClass",
];

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith(".ts") && !p.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

/** Every (group/resource, verb) the operator's code asks the API server for. */
function permissionsCalled(): Set<string> {
  const perms = new Set<string>();
  const add = (resource: string, verb: string) => perms.add(`${resource} ${verb}`);
  const files = sources("operator").map((f) => ({ f, text: readFileSync(f, "utf8") }));
  const all = files.map((x) => x.text).join("\n");
  const unknown: string[] = [];
  for (const { f, text } of files) {
    // client-node names every call by verb, scope and kind: readNamespacedSecret,
    // listSecretForAllNamespaces, patchCustomResourceDefinition (cluster-scoped kinds carry no
    // scope word, so they are named here). Nexus RPCs (createApiKey, ...) match neither.
    const call = new RegExp(
      `\\.(read|list|create|replace|patch|delete)(?:Namespaced|Cluster)(\\w+)\\(|\\.(read|list|create|replace|patch|delete)(\\w+ForAllNamespaces|${CLUSTER_SCOPED.join("|")})\\(`,
      "g",
    );
    for (const m of text.matchAll(call)) {
      const prefix = (m[1] ?? m[3])!;
      const kind = (m[2] ?? m[4])!;
      if (kind.endsWith("CustomObject") || kind.endsWith("CustomObjectStatus")) continue; // below
      const resource = KIND[kind];
      if (!resource) {
        unknown.push(`${f}: ${m[0]}`);
        continue;
      }
      add(resource, VERB[prefix]!);
      // Server-side apply of an object that does not exist yet creates it: RBAC asks for create too.
      if (prefix === "patch" && kind === "CustomResourceDefinition" && /SERVER_SIDE_APPLY/.test(text)) add(resource, "create");
    }
  }
  expect(unknown, "API calls this test cannot map yet: add their kind to KIND").toEqual([]);
  // Custom resources go through ResourceClient, one per kind the operator runs.
  const kinds = [...all.matchAll(/new ResourceClient<\w+>\(kube\.custom, (\w+)\)/g)].map((m) => m[1]);
  expect(kinds.sort()).toEqual(["DESTINATION", "FAILOVER", "QUOTA", "SENDER_APP", "TENANT", "WORKFLOW"]);
  const plurals = ["destinations", "failovers", "quotas", "senderapps", "tenants", "workflows"];
  const client = readFileSync("operator/kube/resource-client.ts", "utf8");
  for (const plural of plurals) {
    if (/getNamespacedCustomObject\(/.test(client)) add(`nexus.dev/${plural}`, "get");
    if (/list(Namespaced|Cluster)CustomObject\(/.test(client)) add(`nexus.dev/${plural}`, "list");
    if (/patchNamespacedCustomObject\(/.test(client)) add(`nexus.dev/${plural}`, "patch");
    if (/replaceNamespacedCustomObjectStatus\(/.test(client)) add(`nexus.dev/${plural}/status`, "update");
  }
  // Informers list and watch: the controllers (every ResourceClient kind) and the Secret watch.
  if (/makeInformer/.test(readFileSync("operator/controller/controller.ts", "utf8"))) {
    for (const plural of plurals) add(`nexus.dev/${plural}`, "watch");
  }
  if (/makeInformer/.test(readFileSync("operator/tenant/secret-watch.ts", "utf8"))) add("/secrets", "watch");
  // The integration kinds' credential Secret watch (client-node's Watch on the Secrets path).
  const credentialWatch = readFileSync("operator/integration/credential-watch.ts", "utf8");
  if (/new Watch\(/.test(credentialWatch) && /\/secrets/.test(credentialWatch)) add("/secrets", "watch");
  // An ownerReference with blockOwnerDeletion needs update on the owner's finalizers subresource
  // (OwnerReferencesPermissionEnforcement admission): the key Secrets' Tenant.
  if (/blockOwnerDeletion: true/.test(readFileSync("operator/tenant/tenant-keys.ts", "utf8")))
    add("nexus.dev/tenants/finalizers", "update");
  return perms;
}

function renderRbac(extra: string[]): Obj[] {
  const r = spawnSync(
    "bash",
    ["scripts/helm.sh", "template", "nx", "charts/nexus", "--namespace", "nexus", "-f", "charts/nexus/ci/minimal-values.yaml", ...extra],
    { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 },
  );
  expect(r.status, r.stderr).toBe(0);
  return parseAllDocuments(r.stdout)
    .map((d) => d.toJS() as Obj)
    .filter((o) => o && (o.kind === "Role" || o.kind === "ClusterRole" || o.kind === "RoleBinding" || o.kind === "ClusterRoleBinding"));
}

/** (group/resource, verb) the operator's ServiceAccount is granted, through its bindings. */
function permissionsGranted(objs: Obj[]): Set<string> {
  const perms = new Set<string>();
  const bound = objs.filter(
    (o) => o.kind.endsWith("Binding") && o.subjects?.some((s: Obj) => s.kind === "ServiceAccount" && s.name === "nx-nexus-operator"),
  );
  for (const b of bound) {
    // A RoleBinding refers to the Role of its own namespace (two Roles may share a name).
    const role = objs.find(
      (o) =>
        o.kind === b.roleRef.kind &&
        o.metadata.name === b.roleRef.name &&
        (o.kind === "ClusterRole" || o.metadata.namespace === b.metadata.namespace),
    );
    expect(role, `${b.kind} ${b.metadata.name} binds a missing ${b.roleRef.kind}`).toBeDefined();
    for (const rule of role?.rules ?? []) {
      for (const g of rule.apiGroups) for (const res of rule.resources) for (const v of rule.verbs) perms.add(`${g}/${res} ${v}`);
    }
  }
  return perms;
}

describe("operator RBAC in the chart", () => {
  const called = permissionsCalled();

  it("maps every Kubernetes API call in operator/ to a permission", () => {
    expect(called.size).toBeGreaterThan(15);
    expect(called).toContain("/secrets watch");
    expect(called).toContain("apiextensions.k8s.io/customresourcedefinitions create");
  });

  it.each([
    ["cluster-wide", [] as string[]],
    ["one watched namespace", ["--set", "operator.watchNamespace=tenants"]],
  ])("grants exactly the verbs and resources the operator calls (%s)", (_scope, extra) => {
    const granted = permissionsGranted(renderRbac(extra));
    const missing = [...called].filter((p) => !granted.has(p)).sort();
    const unused = [...granted].filter((p) => !called.has(p)).sort();
    expect({ missing, unused }).toEqual({ missing: [], unused: [] });
  });
});
