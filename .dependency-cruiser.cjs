/**
 * The import rule (docs/architecture.md, "The import rule"), enforced by `npm run lint:deps` in CI.
 *
 * - A service folder (`services/<x>/` other than kernel, runtime, cli and client: auth, metering,
 *   audit, knowledge, agent, integration and every service still to come) imports only `gen/`,
 *   `services/kernel/` and its own folder. Another service is reached over its API, never its code.
 * - `services/kernel/` imports no service, no runtime, no CLI: it is what services share.
 * - `services/client/` (the SDK) imports only `gen/`.
 * - `services/runtime/` and `services/cli/` are the composition roots: they may import services.
 * - `operator/` imports only `gen/`, `services/client/` and `services/kernel/`.
 * - `gen/` is generated from proto/ and imports nothing of ours.
 * - Production code never imports tests/. Tests (`*.test.ts` beside the code, and tests/, bench/,
 *   scripts/) are free: they may assemble whatever they exercise.
 *
 * tests/import-rule.test.ts runs these rules on a small tree that breaks each of them.
 */

/** Test files beside the code are free; the rules below apply to production code only. */
const TEST_FILE = "\\.test\\.ts$";
/** Every folder of ours that code could reach into; npm packages and node: built-ins are not rules' business. */
const OURS = "^(services|operator|gen|tests|scripts|bench)/";

/** @type {import("dependency-cruiser").IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "service-reaches-outside",
      comment:
        "A service imports only gen/, services/kernel/ and its own folder. To use another service, " +
        "call its API (a peer client built from gen/); to share code, move it into services/kernel/.",
      severity: "error",
      from: { path: "^services/(?!(?:kernel|runtime|cli|client)/)([^/]+)/", pathNot: TEST_FILE },
      to: { path: OURS, pathNot: "^(gen/|services/kernel/|services/$1/)" },
    },
    {
      name: "kernel-imports-a-service",
      comment: "services/kernel/ is shared by every service; it imports no service, no runtime, no CLI.",
      severity: "error",
      from: { path: "^services/kernel/", pathNot: TEST_FILE },
      to: { path: OURS, pathNot: "^(gen/|services/kernel/)" },
    },
    {
      name: "client-imports-more-than-contracts",
      comment: "The client SDK ships to users: it depends on the generated contracts (gen/) only.",
      severity: "error",
      from: { path: "^services/client/", pathNot: TEST_FILE },
      to: { path: OURS, pathNot: "^(gen/|services/client/)" },
    },
    {
      name: "operator-imports-a-service",
      comment: "The operator talks to Nexus over its API: it imports gen/, the client SDK and the kernel, never a service.",
      severity: "error",
      from: { path: "^operator/", pathNot: TEST_FILE },
      to: { path: OURS, pathNot: "^(gen/|operator/|services/client/|services/kernel/)" },
    },
    {
      name: "runtime-imports-outside-services",
      comment:
        "The runtime composes services in-process: it imports services and gen/, not the CLI (which " +
        "composes the runtime), the client SDK or the operator.",
      severity: "error",
      from: { path: "^services/runtime/", pathNot: TEST_FILE },
      to: { path: OURS, pathNot: "^(gen/|services/(?!(?:cli|client)/))" },
    },
    {
      name: "gen-imports-ours",
      comment: "gen/ is generated from proto/ by buf; it imports only npm packages and itself.",
      severity: "error",
      from: { path: "^gen/" },
      to: { path: OURS, pathNot: "^gen/" },
    },
    {
      name: "production-imports-tests",
      comment: "Shipped code never depends on a test helper.",
      severity: "error",
      from: { path: "^(services|operator|scripts|bench)/", pathNot: TEST_FILE },
      to: { path: "^tests/" },
    },
    {
      name: "not-to-unresolvable",
      comment: "An import that resolves to nothing would hide a dependency from the rules above.",
      severity: "error",
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist)/" },
    // TypeScript 7.0 has no compiler API for dependency-cruiser to use, so parse with swc. Its
    // parser keeps type-only imports, which couple code as much as value imports do.
    parser: "swc",
    // Resolve package subpaths such as "@bufbuild/protobuf/wkt" through their exports maps.
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default", "types"],
      extensions: [".ts", ".js", ".mjs", ".cjs", ".json", ".d.ts"],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
