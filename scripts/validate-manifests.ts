/**
 * Validates Kubernetes manifests offline against the Kubernetes OpenAPI schemas (the
 * kubernetes-models package for built-in kinds, @kubernetes-models/prometheus-operator for
 * ServiceMonitor) and the Nexus CRDs' own schemas (k8s/crds/*.yaml, through ajv) for
 * Tenant/Quota/Failover objects. Every object must be of a known kind: an unknown kind fails.
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

/** Schema validators of the Nexus kinds, keyed "apiVersion/Kind", from the generated CRD files. */
function nexusValidators(): Map<string, (obj: unknown) => string[]> {
  if (crdValidators) return crdValidators;
  // Kubernetes extensions (x-kubernetes-*) are not JSON Schema keywords: allow them, ignore them.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  crdValidators = new Map();
  const dir = join(ROOT, "k8s", "crds");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
    const crd = parseYaml(readFileSync(join(dir, file), "utf8")) as Obj;
    for (const v of crd.spec.versions as Obj[]) {
      const validate = ajv.compile(v.schema.openAPIV3Schema as object);
      crdValidators.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, (obj) =>
        validate(obj) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message ?? "invalid"}`),
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
