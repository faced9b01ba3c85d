import { createHash } from "node:crypto";
import { fromJson, type JsonObject, toJson } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { type ModuleManifest, ModuleManifestSchema } from "../../gen/nexus/modules/v1/module_pb.js";
import { executeCommand } from "../kernel/commands/index.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { listModules, moduleAggregate, readModule } from "./adapters/postgres.js";
import { buildModule, type ModuleDrafter } from "./builder/module-builder.js";
import type { BuildSpec } from "./builder/templates.js";
import type { CredentialStore } from "./credential-store.js";
import type { ModuleState, TestResult, VersionRecord } from "./domain/module.js";
import { checkManifest } from "./manifest-check.js";
import { runModuleTests } from "./module-tests.js";
import type { ModulesSettings } from "./modules-settings.js";
import { ToolResultCache } from "./tool-result-cache.js";
import { invokeTool, type SandboxRunner } from "./tool-runner.js";
import { runnableCode } from "./typescript-source.js";

/** Who acts: the tenant and the API key. */
export interface Actor {
  tenantId: string;
  keyId: string;
}

/** What CallTool returns. */
export interface ToolCallResult {
  output: JsonObject;
  version: string;
  cached: boolean;
  durationMs: number;
  /** The marketplace listing the version was installed from ("" for the tenant's own module). */
  listingId: string;
}

/**
 * The modules application: submission (manifest checks, sandbox tests), review, activation
 * and rollback, and tool calls. Every state change goes through the command helper, so each
 * step is an event on the module's stream (and an audit entry).
 */
export class ModulesApplication {
  readonly cache: ToolResultCache;

  constructor(
    private readonly deps: {
      db: Database;
      credentials: CredentialStore;
      /** Where code runs; default this thread (the parts pass the worker pool). */
      sandbox?: SandboxRunner;
      settings: ModulesSettings;
      clock: () => Date;
      logger: Logger;
    },
  ) {
    this.cache = new ToolResultCache(deps.settings.cacheEntries);
  }

  /** Checks the manifest, runs the version's tests in the sandbox and records the version. */
  async submit(actor: Actor, manifest: ModuleManifest, code: string): Promise<VersionRecord> {
    checkManifest(manifest, code, this.deps.settings);
    const js = runnableCode(manifest, code);
    await this.refuseExisting(actor.tenantId, manifest.name, manifest.version);
    const credentials = await this.deps.credentials.resolve(actor.tenantId, manifest.credentials, false);
    const testResults = await runModuleTests(manifest, js, credentials, this.deps.settings, this.deps.sandbox);
    return this.record(actor, manifest, code, testResults);
  }

  /**
   * Builds a code module from a spec and a template (builder/): the drafter writes the code,
   * the generated tests run in the sandbox, failures go back for at most `maxRepairs` repairs,
   * and the last draft is recorded as a version like a submission.
   */
  async build(
    actor: Actor,
    spec: BuildSpec,
    drafter: ModuleDrafter,
    maxRepairs: number,
  ): Promise<{ record: VersionRecord; repairs: number }> {
    await this.refuseExisting(actor.tenantId, spec.name, spec.version);
    const outcome = await buildModule(spec, drafter, maxRepairs, async (draft) => {
      checkManifest(draft.manifest, draft.code, this.deps.settings);
      return runModuleTests(draft.manifest, runnableCode(draft.manifest, draft.code), new Map(), this.deps.settings, this.deps.sandbox);
    });
    const record = await this.record(actor, outcome.draft.manifest, outcome.draft.code, outcome.results);
    return { record, repairs: outcome.repairs };
  }

  private async refuseExisting(tenantId: string, name: string, version: string): Promise<void> {
    const existing = await readModule(this.deps.db, { tenantId, name });
    if (existing?.versions.some((v) => v.version === version)) {
      throw domainError(
        "ALREADY_EXISTS",
        `module ${name} already has version ${version}: versions are immutable, submit a new version number`,
        {
          module: name,
          version,
        },
      );
    }
  }

  private async record(actor: Actor, manifest: ModuleManifest, code: string, testResults: TestResult[]): Promise<VersionRecord> {
    const record: VersionRecord = {
      version: manifest.version,
      manifest: toJson(ModuleManifestSchema, manifest) as Record<string, unknown>,
      code,
      codeSha256: createHash("sha256").update(code).digest("hex"),
      status: testResults.every((t) => t.passed) ? "PENDING_REVIEW" : "TESTS_FAILED",
      testResults,
      submittedBy: actor.keyId,
      submittedAt: this.deps.clock().toISOString(),
      reviewedBy: "",
      reviewedAt: "",
      feedback: "",
    };
    const key = { tenantId: actor.tenantId, name: manifest.name };
    await executeCommand(
      this.deps.db,
      moduleAggregate,
      key,
      { type: "SubmitVersion", record },
      { metadata: { tenantId: actor.tenantId, actor: actor.keyId } },
    );
    return record;
  }

  /** Approves or rejects a version that passed its tests. */
  async review(actor: Actor, name: string, version: string, approve: boolean, feedback: string): Promise<VersionRecord> {
    const key = { tenantId: actor.tenantId, name };
    await this.get(actor.tenantId, name);
    const r = await executeCommand(
      this.deps.db,
      moduleAggregate,
      key,
      { type: "ReviewVersion", version, approve, feedback, reviewer: actor.keyId, at: this.deps.clock().toISOString() },
      { metadata: { tenantId: actor.tenantId, actor: actor.keyId } },
    );
    return r.state!.versions.find((v) => v.version === version)!;
  }

  /** Makes an approved version active (a rollback when it is older); returns the module and the version it replaced. */
  async activate(actor: Actor, name: string, version: string): Promise<{ module: ModuleState; previous: string }> {
    const before = await this.get(actor.tenantId, name);
    const r = await executeCommand(
      this.deps.db,
      moduleAggregate,
      { tenantId: actor.tenantId, name },
      { type: "ActivateVersion", version, at: this.deps.clock().toISOString() },
      { metadata: { tenantId: actor.tenantId, actor: actor.keyId } },
    );
    const module = r.state ?? before;
    this.deps.logger.info({ tenantId: actor.tenantId, module: name, version, previous: before.activeVersion }, "module version activated");
    return { module, previous: before.activeVersion === version ? "" : before.activeVersion };
  }

  /** A module of the tenant; NOT_FOUND when it has none by that name. */
  async get(tenantId: string, name: string): Promise<ModuleState> {
    const m = await readModule(this.deps.db, { tenantId, name });
    if (!m) throw domainError("NOT_FOUND", `no module named ${name}`, { module: name });
    return m;
  }

  /** One page of the tenant's modules by name. */
  list(tenantId: string, after: string | undefined, limit: number): Promise<ModuleState[]> {
    return listModules(this.deps.db, tenantId, after, limit);
  }

  /**
   * Calls a tool of the module's active version. The active version is read from the
   * database on every call, so an activation or rollback holds on every replica as soon as it
   * commits. Failures are domain errors with the tool's reason.
   */
  async callTool(tenantId: string, moduleName: string, tool: string, input: JsonObject): Promise<ToolCallResult> {
    const module = await this.get(tenantId, moduleName);
    const active = module.versions.find((v) => v.version === module.activeVersion);
    if (!active) {
      throw domainError(
        "MODULE_NOT_ACTIVE",
        `module ${moduleName} has no active version: a tenant admin approves and activates one first`,
        {
          module: moduleName,
        },
      );
    }
    const manifest = fromJson(ModuleManifestSchema, active.manifest as JsonObject);
    const cacheKey = ToolResultCache.key(tenantId, moduleName, active.version, tool, input);
    const hit = manifest.cacheTtlSeconds > 0 ? this.cache.get(cacheKey) : undefined;
    if (hit) return { output: hit, version: active.version, cached: true, durationMs: 0, listingId: active.source?.listingId ?? "" };
    const credentials = await this.deps.credentials.resolve(tenantId, manifest.credentials, true);
    const r = await invokeTool(
      { manifest, code: runnableCode(manifest, active.code), tool, input, credentials },
      this.deps.settings,
      this.deps.sandbox,
    );
    if (r.kind === "failed") {
      throw domainError(r.reason, `${moduleName}.${tool}@${active.version}: ${r.message}`, {
        module: moduleName,
        tool,
        version: active.version,
      });
    }
    this.cache.set(cacheKey, r.output, manifest.cacheTtlSeconds);
    return {
      output: r.output,
      version: active.version,
      cached: false,
      durationMs: r.durationMs,
      listingId: active.source?.listingId ?? "",
    };
  }
}
