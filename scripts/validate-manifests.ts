/**
 * Validates Kubernetes manifests offline against the Kubernetes OpenAPI schemas (the
 * kubernetes-models package for built-in kinds, @kubernetes-models/prometheus-operator for
 * ServiceMonitor, PrometheusRule), the Nexus CRDs' own schemas (k8s/crds/*.yaml, through ajv)
 * for Tenant/Quota/Failover objects, and the CRD subsets in k8s/testdata/crds/ (CloudNativePG
 * Cluster). Custom resources are checked strictly: an unknown field fails, as with
 * `kubectl apply --validate=strict`. Every object must be of a known kind: an unknown kind fails.
 *
 *   node scripts/validate-manifests.ts rendered.yaml [more.yaml …]   (or YAML on stdin)
 *
 * Used by `npm run k8s:check` on `helm template` output and by tests/k8s-chart.test.ts.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import { parseAllDocuments, parse as parseYaml } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are walked by path; the JSON schemas, not types, check them.
type Obj = Record<string, any>;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

let crdValidators: Map<string, (obj: unknown) => string[]> | undefined;

/**
 * The schema as `kubectl apply --validate=strict` applies it: an object that lists its
 * properties refuses any other (the API server would otherwise prune it silently), unless it
 * keeps unknown fields (x-kubernetes-preserve-unknown-fields).
 */
function strict(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== "object") return schema;
  const out: Obj = {};
  for (const [k, v] of Object.entries(schema as Obj)) out[k] = strict(v);
  if (out.properties && out.additionalProperties === undefined && !out["x-kubernetes-preserve-unknown-fields"])
    out.additionalProperties = false;
  return out;
}

/**
 * Schema validators of custom resources, keyed "apiVersion/Kind": the Nexus kinds from the
 * generated CRD files (k8s/crds/), and the subsets of other projects' CRDs our production
 * examples use (k8s/testdata/crds/, e.g. CloudNativePG's Cluster).
 */
function nexusValidators(): Map<string, (obj: unknown) => string[]> {
  if (crdValidators) return crdValidators;
  // Kubernetes extensions (x-kubernetes-*) are not JSON Schema keywords: allow them, ignore them.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  crdValidators = new Map();
  const files = [join(ROOT, "k8s", "crds"), join(ROOT, "k8s", "testdata", "crds")].flatMap((dir) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => join(dir, f)),
  );
  for (const file of files) {
    const crd = parseYaml(readFileSync(file, "utf8")) as Obj;
    for (const v of crd.spec.versions as Obj[]) {
      const validate = ajv.compile(strict(v.schema.openAPIV3Schema) as object);
      crdValidators.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, (obj) =>
        validate(obj)
          ? []
          : (validate.errors ?? []).map(
              (e) =>
                `${e.instancePath || "/"} ${e.message ?? "invalid"}${e.params?.additionalProperty ? ` (${String(e.params.additionalProperty)})` : ""}`,
            ),
      );
    }
  }
  return crdValidators;
}

async function modelFor(apiVersion: string, kind: string): Promise<(new (data: Obj) => { validate(): void }) | undefined> {
  const candidates = apiVersion.startsWith("monitoring.coreos.com/")
    ? [`@kubernetes-models/prometheus-operator/${apiVersion}`]
    : [`kubernetes-models/${apiVersion}`];
  for (const spec of candidates) {
    try {
      const mod = (await import(spec)) as Record<string, unknown>;
      const cls = mod[kind];
      if (typeof cls === "function") return cls as new (data: Obj) => { validate(): void };
    } catch {
      // Not a module of this package.
    }
  }
  return undefined;
}

/** Problems of one object (empty when valid). */
export async function validateObject(obj: Obj): Promise<string[]> {
  const id = `${String(obj?.kind)} ${String(obj?.metadata?.name)}`;
  if (!obj || typeof obj !== "object" || typeof obj.apiVersion !== "string" || typeof obj.kind !== "string") {
    return [`${id}: not a Kubernetes object (apiVersion and kind are required)`];
  }
  if (!obj.metadata?.name || typeof obj.metadata.name !== "string") return [`${id}: metadata.name is required`];
  const nexus = nexusValidators().get(`${obj.apiVersion}/${obj.kind}`);
  if (nexus) return nexus(obj).map((e) => `${id}: ${e}`);
  const Model = await modelFor(obj.apiVersion, obj.kind);
  if (!Model) return [`${id}: unknown kind ${obj.apiVersion} ${obj.kind} (no schema to validate it)`];
  try {
    new Model(obj).validate();
    return [];
  } catch (err) {
    return [`${id}: ${err instanceof Error ? err.message : String(err)}`];
  }
}

/** Parses multi-document YAML (empty documents skipped) and validates every object. */
export async function validateYaml(text: string): Promise<{ objects: Obj[]; problems: string[] }> {
  const objects: Obj[] = [];
  const problems: string[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) {
      problems.push(`YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      continue;
    }
    const obj = doc.toJS() as Obj | null;
    if (obj === null || obj === undefined) continue;
    objects.push(obj);
    problems.push(...(await validateObject(obj)));
  }
  return { objects, problems };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = process.argv.slice(2);
  const texts = files.length > 0 ? files.map((f) => readFileSync(f, "utf8")) : [readFileSync(0, "utf8")];
  let count = 0;
  const problems: string[] = [];
  for (const text of texts) {
    const r = await validateYaml(text);
    count += r.objects.length;
    problems.push(...r.problems);
  }
  if (count === 0) problems.push("no Kubernetes objects found");
  for (const p of problems) console.error(`invalid: ${p}`);
  console.log(`validate-manifests: ${count} object(s), ${problems.length} problem(s)`);
  process.exitCode = problems.length > 0 ? 1 : 0;
}
