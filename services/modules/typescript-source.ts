import { stripTypeScriptTypes } from "node:module";
import type { ModuleManifest } from "../../gen/nexus/modules/v1/module_pb.js";
import { domainError } from "../kernel/errors.js";

/**
 * The JavaScript a code module runs. A manifest with `language: "typescript"` has its source
 * stored as submitted (reviewers read it) and its types stripped here, with Node's built-in
 * `stripTypeScriptTypes` (no type-checking; whitespace keeps line numbers). Anything else is
 * JavaScript and runs as it is. Invalid or unsupported TypeScript (e.g. `enum`, which strip-only
 * mode cannot erase) is INVALID_ARGUMENT MANIFEST_INVALID on field `code`, naming the line.
 */
export function runnableCode(manifest: Pick<ModuleManifest, "language">, code: string): string {
  if (manifest.language !== "typescript" || code === "") return code;
  try {
    return stripTypeScriptTypes(code, { mode: "strip" });
  } catch (error) {
    const e = error as { message?: string; stack?: string };
    // Node puts the failing line first in the stack, as "<file>:<line>".
    const line = /^[^\n]*:(\d+)\n/.exec(e.stack ?? "")?.[1];
    const where = line ? `line ${line}: ` : "";
    throw domainError("MANIFEST_INVALID", `code: TypeScript ${where}${e.message ?? String(error)}`, {
      field: "code",
      ...(line ? { line } : {}),
    });
  }
}
