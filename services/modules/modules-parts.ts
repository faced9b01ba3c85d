import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { type ModuleDrafter, openAiDrafter, templateDrafter } from "./builder/module-builder.js";
import { CredentialStore } from "./credential-store.js";
import { Marketplace, REVENUE_CONSUMER, REVENUE_SUBJECT, revenueLedgerHandler } from "./marketplace.js";
import { ModulesApplication } from "./modules-application.js";
import { ModulesHandler } from "./modules-handler.js";
import { type ModulesSettings, modulesSettingsFromConfig } from "./modules-settings.js";
import { modulesRoutes } from "./routes.js";
import type { SandboxCall } from "./sandbox/quickjs-sandbox.js";
import { SandboxPool } from "./sandbox/sandbox-pool.js";

/** Options of {@link createModulesParts} beyond the service context. */
export interface ModulesPartsOptions {
  /** Default: from `ctx.config`. */
  settings?: ModulesSettings;
}

/** The modules service's parts, with the application inside (tests call it directly). */
export interface ModulesParts extends ServiceParts {
  app: ModulesApplication;
  handler: ModulesHandler;
}

/**
 * Assembles modules: the credential store over the keyring, the application (sandbox,
 * broker, cache), the drafters of the builder (template always, openai when
 * NEXUS_OPENAI_BASE_URL is set), the marketplace with its revenue ledger consumer, and the
 * handler.
 */
export function createModulesParts(ctx: ServiceContext, options: ModulesPartsOptions = {}): ModulesParts {
  const settings = options.settings ?? modulesSettingsFromConfig(ctx.config);
  const credentials = new CredentialStore(ctx.db, ctx.keyring, ctx.clock);
  const marketplace = new Marketplace({ db: ctx.db, clock: ctx.clock });
  // Code runs on worker threads when the compiled worker is there (always in a build); from
  // TypeScript sources (unit tests) it runs in this thread.
  const pool = SandboxPool.beside(settings.sandboxWorkers);
  if (!pool) ctx.logger.warn("sandbox worker not found beside the modules service: code modules run on the main thread");
  const app = new ModulesApplication({
    db: ctx.db,
    credentials,
    settings,
    clock: ctx.clock,
    logger: ctx.logger,
    ...(pool ? { sandbox: (call: SandboxCall) => pool.run(call) } : {}),
  });
  const drafters = new Map<string, ModuleDrafter>([["template", templateDrafter]]);
  if (ctx.config.openaiBaseUrl) {
    drafters.set(
      "openai",
      openAiDrafter({
        baseUrl: ctx.config.openaiBaseUrl,
        ...(ctx.config.openaiApiKey ? { apiKey: ctx.config.openaiApiKey } : {}),
        model: ctx.config.openaiModel,
        timeoutMs: ctx.config.agentModelTimeoutMs,
      }),
    );
  }
  const handler = new ModulesHandler({ app, credentials, drafters, marketplace });
  return {
    app,
    handler,
    handlers: [modulesRoutes(handler)],
    consumers: [{ name: REVENUE_CONSUMER, subject: REVENUE_SUBJECT, handler: revenueLedgerHandler() }],
    shutdown: async () => {
      await pool?.close();
    },
  };
}
