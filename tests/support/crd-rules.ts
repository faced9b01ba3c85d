import { nexusCrds } from "../../operator/crds/index.js";

/**
 * The message of every CEL rule (`x-kubernetes-validations`) the CRDs of these kinds carry,
 * sorted: a suite that tests each rule compares its refusals with this list, so a rule added
 * without a test fails it.
 */
export function celRuleMessages(kinds: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      for (const [k, x] of Object.entries(v)) {
        if (k === "x-kubernetes-validations") for (const r of x as { message: string }[]) out.push(r.message);
        walk(x);
      }
    }
  };
  walk(nexusCrds().filter((c) => kinds.includes(c.spec.names.kind)));
  return out.sort();
}
