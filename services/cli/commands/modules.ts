import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  type Module,
  ModuleManifestSchema,
  ModuleSchema,
  type ModuleVersion,
  ModuleVersionSchema,
  ModuleVersionStatus,
} from "../../../gen/nexus/modules/v1/module_pb.js";
import { ListingSchema } from "../../../gen/nexus/modules/v1/modules_service_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";
import { integerOption, jsonObjectOption } from "./corpora.js";

const STATUS: Record<ModuleVersionStatus, string> = {
  [ModuleVersionStatus.UNSPECIFIED]: "?",
  [ModuleVersionStatus.TESTS_FAILED]: "tests failed",
  [ModuleVersionStatus.PENDING_REVIEW]: "pending review",
  [ModuleVersionStatus.APPROVED]: "approved",
  [ModuleVersionStatus.REJECTED]: "rejected",
};

function printVersion(v: ModuleVersion): void {
  console.log(`${v.name}@${v.version}: ${STATUS[v.status]}${v.reviewFeedback ? ` (feedback: ${v.reviewFeedback})` : ""}`);
  console.log(`code sha256: ${v.codeSha256}`);
  if (v.manifest?.credentials.length) console.log(`credentials: ${v.manifest.credentials.join(", ")}`);
  if (v.manifest?.egressHosts.length) console.log(`egress hosts: ${v.manifest.egressHosts.join(", ")}`);
  for (const t of v.testResults) console.log(`  ${t.passed ? "pass" : "FAIL"}  ${t.name}${t.message ? ` — ${t.message}` : ""}`);
}

function printModule(m: Module): void {
  console.log(`${m.name}: active ${m.activeVersion || "(none)"}${m.activatedAt ? ` since ${when(m.activatedAt)}` : ""}`);
  printTable(
    ["VERSION", "STATUS", "TESTS", "SUBMITTED", "REVIEWED BY"],
    m.versions.map((v) => [
      v.version,
      STATUS[v.status],
      `${v.testResults.filter((t) => t.passed).length}/${v.testResults.length}`,
      when(v.submittedAt),
      v.reviewedBy || "-",
    ]),
  );
}

/** `nexus modules list`. */
export const modulesListCommand: Command = {
  path: ["modules", "list"],
  summary: "List the tenant's modules (agent tools) and their active versions",
  usage: "nexus modules list [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true });
    const client = clientFrom(values);
    const all: Module[] = [];
    let pageToken = "";
    do {
      const page = await client.modules.listModules({ pageSize: 200, pageToken });
      all.push(...page.modules);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (values.json)
      console.log(
        JSON.stringify(
          all.map((m) => toJson(ModuleSchema, m)),
          null,
          2,
        ),
      );
    else if (all.length === 0) console.log("no modules yet: nexus modules build NAME --version 1.0.0 --spec TEXT");
    else
      printTable(
        ["NAME", "ACTIVE", "VERSIONS"],
        all.map((m) => [m.name, m.activeVersion || "-", m.versions.map((v) => `${v.version} (${STATUS[v.status]})`).join(", ")]),
      );
    return 0;
  },
};

/** `nexus modules get`. */
export const modulesGetCommand: Command = {
  path: ["modules", "get"],
  summary: "Show a module with its versions, test results and reviews",
  usage: "nexus modules get NAME [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one module name");
    const { module } = await clientFrom(values).modules.getModule({ name: positionals[0]! });
    if (values.json) printJson(ModuleSchema, module!);
    else printModule(module!);
    return 0;
  },
};

/** `nexus modules submit`. */
export const modulesSubmitCommand: Command = {
  path: ["modules", "submit"],
  summary: "Submit a module version (manifest JSON, optional JavaScript code); its tests run in the sandbox",
  usage: "nexus modules submit --manifest FILE.json [--code FILE.js] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, manifest: { type: "string" }, code: { type: "string" } },
      strict: true,
    });
    if (!values.manifest) throw new UsageError("--manifest is required");
    let manifestJson: JsonValue;
    try {
      manifestJson = JSON.parse(await readFile(values.manifest, "utf8")) as JsonValue;
    } catch (err) {
      throw new UsageError(`--manifest: ${err instanceof Error ? err.message : String(err)}`);
    }
    const manifest = fromJson(ModuleManifestSchema, manifestJson);
    const code = values.code ? await readFile(values.code, "utf8") : "";
    const { version } = await clientFrom(values).modules.submitModuleVersion({ manifest, code });
    if (values.json) printJson(ModuleVersionSchema, version!);
    else printVersion(version!);
    return version?.status === ModuleVersionStatus.TESTS_FAILED ? 1 : 0;
  },
};

/** `nexus modules build`. */
export const modulesBuildCommand: Command = {
  path: ["modules", "build"],
  summary: "Draft a code module from a spec and a template, test it in the sandbox (with repairs) and submit it",
  usage:
    "nexus modules build NAME --version V --spec TEXT [--template transform|http-json] [--egress-host HOST] [--provider template|openai] [--max-repairs N] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        ...CLIENT_OPTIONS,
        version: { type: "string" },
        spec: { type: "string" },
        template: { type: "string" },
        "egress-host": { type: "string" },
        provider: { type: "string" },
        "max-repairs": { type: "string" },
      },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError("give one module name");
    if (!values.version || !values.spec) throw new UsageError("--version and --spec are required");
    const maxRepairs = integerOption(values["max-repairs"], "--max-repairs", 0, 10);
    const r = await clientFrom(values).modules.buildModule({
      name: positionals[0]!,
      version: values.version,
      spec: values.spec,
      template: values.template ?? "",
      egressHost: values["egress-host"] ?? "",
      provider: values.provider ?? "",
      ...(maxRepairs !== undefined ? { maxRepairs } : {}),
    });
    if (values.json) printJson(ModuleVersionSchema, r.version!);
    else {
      printVersion(r.version!);
      console.log(`drafted by ${r.draftedBy}, ${r.repairs} repair(s)`);
    }
    return r.version?.status === ModuleVersionStatus.TESTS_FAILED ? 1 : 0;
  },
};

/** `nexus modules review`. */
export const modulesReviewCommand: Command = {
  path: ["modules", "review"],
  summary: "Approve or reject a module version that passed its tests (tenant admins)",
  usage: "nexus modules review NAME VERSION (--approve | --reject --feedback TEXT) [--feedback TEXT]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, approve: { type: "boolean" }, reject: { type: "boolean" }, feedback: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 2) throw new UsageError("give the module name and the version");
    if (Boolean(values.approve) === Boolean(values.reject)) throw new UsageError("give exactly one of --approve and --reject");
    const { version } = await clientFrom(values).modules.reviewModuleVersion({
      name: positionals[0]!,
      version: positionals[1]!,
      approve: Boolean(values.approve),
      feedback: values.feedback ?? "",
    });
    printVersion(version!);
    return 0;
  },
};

/** `nexus modules activate`. */
export const modulesActivateCommand: Command = {
  path: ["modules", "activate"],
  summary: "Make an approved version the active one: activation, upgrade or rollback, on every replica at once",
  usage: "nexus modules activate NAME VERSION",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 2) throw new UsageError("give the module name and the version");
    const r = await clientFrom(values).modules.activateModuleVersion({ name: positionals[0]!, version: positionals[1]! });
    console.log(`${positionals[0]}: active ${positionals[1]}${r.previousVersion ? ` (was ${r.previousVersion})` : ""}`);
    return 0;
  },
};

/** `nexus modules call`. */
export const modulesCallCommand: Command = {
  path: ["modules", "call"],
  summary: "Call a tool of a module's active version with a JSON input",
  usage: "nexus modules call MODULE TOOL [--input JSON]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, input: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 2) throw new UsageError("give the module and the tool");
    const input = jsonObjectOption(values.input, "--input") ?? {};
    const r = await clientFrom(values).modules.callTool({ module: positionals[0]!, tool: positionals[1]!, input });
    console.log(JSON.stringify({ version: r.moduleVersion, cached: r.cached, durationMs: r.durationMs, output: r.output ?? {} }, null, 2));
    return 0;
  },
};

/** `nexus credentials set`. */
export const credentialsSetCommand: Command = {
  path: ["credentials", "set"],
  summary: "Store a credential modules need, sealed with the keyring (value from an environment variable, never an argument)",
  usage: "nexus credentials set NAME --from-env VAR",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, "from-env": { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 1) throw new UsageError("give one credential name");
    const variable = values["from-env"];
    if (!variable) throw new UsageError("--from-env VAR is required (secrets on the command line end up in shell history)");
    const value = process.env[variable];
    if (!value) throw new UsageError(`environment variable ${variable} is not set`);
    await clientFrom(values).modules.setCredential({ name: positionals[0]!, value });
    console.log(`credential ${positionals[0]} stored`);
    return 0;
  },
};

/** `nexus credentials list`. */
export const credentialsListCommand: Command = {
  path: ["credentials", "list"],
  summary: "List the tenant's credential names (never values)",
  usage: "nexus credentials list",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true });
    const { credentials } = await clientFrom(values).modules.listCredentials({});
    if (credentials.length === 0) console.log("no credentials yet: nexus credentials set NAME --from-env VAR");
    else
      printTable(
        ["NAME", "UPDATED"],
        credentials.map((c) => [c.name, when(c.updatedAt)]),
      );
    return 0;
  },
};

/** `nexus marketplace list`. */
export const marketplaceListCommand: Command = {
  path: ["marketplace", "list"],
  summary: "Browse or search the module marketplace (most installed first)",
  usage: "nexus marketplace list [QUERY] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    const client = clientFrom(values);
    const rows: Awaited<ReturnType<typeof client.modules.listListings>>["listings"] = [];
    let pageToken = "";
    do {
      const page = await client.modules.listListings({ query: positionals.join(" "), pageSize: 100, pageToken });
      rows.push(...page.listings);
      pageToken = page.nextPageToken;
    } while (pageToken);
    if (values.json)
      console.log(
        JSON.stringify(
          rows.map((l) => toJson(ListingSchema, l)),
          null,
          2,
        ),
      );
    else
      printTable(
        ["LISTING", "MODULE", "CREATOR", "LICENSE", "PRICE/CALL", "INSTALLS", "RATING"],
        rows.map((l) => [
          l.listingId,
          `${l.name}@${l.version}`,
          l.creator,
          l.license,
          (Number(l.priceMicrosPerCall) / 1e6).toFixed(6),
          String(l.installCount),
          l.ratingCount ? `${l.ratingAverage} (${l.ratingCount})` : "-",
        ]),
      );
    return 0;
  },
};

/** `nexus marketplace publish`. */
export const marketplacePublishCommand: Command = {
  path: ["marketplace", "publish"],
  summary: "Publish an approved module version to the marketplace (tenant admins)",
  usage: "nexus marketplace publish NAME VERSION --license SPDX [--price-per-call AMOUNT] [--summary TEXT]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, license: { type: "string" }, "price-per-call": { type: "string" }, summary: { type: "string" } },
      allowPositionals: true,
      strict: true,
    });
    if (positionals.length !== 2) throw new UsageError("give the module name and the version");
    if (!values.license) throw new UsageError("--license is required, e.g. MIT");
    const price = Number(values["price-per-call"] ?? "0");
    if (!Number.isFinite(price) || price < 0 || price > 1000) throw new UsageError("--price-per-call must be an amount from 0 to 1000");
    const { listing } = await clientFrom(values).modules.publishModule({
      name: positionals[0]!,
      version: positionals[1]!,
      license: values.license,
      priceMicrosPerCall: BigInt(Math.round(price * 1e6)),
      summary: values.summary ?? "",
    });
    console.log(`published ${listing?.name}@${listing?.version} as ${listing?.listingId}`);
    return 0;
  },
};

/** `nexus marketplace install`. */
export const marketplaceInstallCommand: Command = {
  path: ["marketplace", "install"],
  summary: "Install a marketplace listing into the tenant (approved and active at once; tenant admins)",
  usage: "nexus marketplace install LISTING_ID",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one listing id");
    const { module } = await clientFrom(values).modules.installListing({ listingId: positionals[0]! });
    console.log(`installed ${module?.name}@${module?.activeVersion}`);
    return 0;
  },
};

/** `nexus marketplace revenue`. */
export const marketplaceRevenueCommand: Command = {
  path: ["marketplace", "revenue"],
  summary: "The revenue of the tenant's listings: paid calls, gross, the creator's 85 % and the platform's 15 %",
  usage: "nexus marketplace revenue",
  async run(args) {
    const { values } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true });
    const { listings } = await clientFrom(values).modules.getRevenue({});
    const amount = (m: bigint) => (Number(m) / 1e6).toFixed(6);
    printTable(
      ["LISTING", "MODULE", "CALLS", "GROSS", "CREATOR (85%)", "PLATFORM (15%)"],
      listings.map((l) => [
        l.listingId,
        `${l.name}@${l.version}`,
        String(l.calls),
        amount(l.grossMicros),
        amount(l.creatorMicros),
        amount(l.platformMicros),
      ]),
    );
    return 0;
  },
};

/** The module commands. */
export const modulesCommands: readonly Command[] = [
  modulesListCommand,
  modulesGetCommand,
  modulesSubmitCommand,
  modulesBuildCommand,
  modulesReviewCommand,
  modulesActivateCommand,
  modulesCallCommand,
  credentialsSetCommand,
  credentialsListCommand,
  marketplaceListCommand,
  marketplacePublishCommand,
  marketplaceInstallCommand,
  marketplaceRevenueCommand,
];
