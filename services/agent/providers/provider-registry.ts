import { requireFeature } from "../../kernel/authz/require-feature.js";
import type { TenantPrincipal } from "../../kernel/context.js";
import { domainError } from "../../kernel/errors.js";
import type { CorpusModelSettings } from "../ports.js";
import type { ModelProvider } from "./ports.js";

/** The provider and model a run uses. */
export interface ModelSelection {
  provider: ModelProvider;
  model: string;
}

/** What {@link ProviderRegistry.select} decides from. */
export interface SelectionInput {
  /** RunOptions.provider ("" = not named). */
  requestedProvider: string;
  /** RunOptions.model ("" = not named). */
  requestedModel: string;
  /** The corpus's provider_config.agent section. */
  corpus: CorpusModelSettings;
  principal: TenantPrincipal;
}

/** Feature key that lets a tenant use a remote model provider, e.g. feature.agent.openai. */
export function providerFeature(provider: string): string {
  return `feature.agent.${provider}`;
}

/** Plans that may use remote providers while the feature catalog has no key for them. */
const REMOTE_PLANS: ReadonlySet<string> = new Set(["pro", "enterprise"]);

/**
 * The model providers of this installation and the rules for choosing one per run:
 * provider = the request's, else the corpus's (provider_config.agent.provider), else the
 * installation default (NEXUS_AGENT_DEFAULT_PROVIDER); model = the request's, else the
 * corpus's when it is for that provider, else the provider's default.
 *
 * Entitlements: local providers (extractive) are open to every tenant. A remote provider
 * needs the tenant's `feature.agent.<provider>` entitlement (PERMISSION_DENIED
 * FEATURE_NOT_ENABLED otherwise); while the installation's feature catalog does not list
 * that key, plans pro and enterprise have it. An override's config may restrict the models:
 * `{"models": ["gpt-4o-mini"]}`.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, ModelProvider>();

  constructor(
    providers: readonly ModelProvider[],
    readonly defaultProvider: string,
    /** Providers this build knows but the installation did not configure (for clearer errors). */
    private readonly unconfigured: ReadonlyMap<string, string> = new Map(),
  ) {
    for (const p of providers) this.providers.set(p.name, p);
    if (!this.providers.has(defaultProvider)) {
      throw new Error(
        `the default model provider "${defaultProvider}" is not configured (${this.unconfigured.get(defaultProvider) ?? "unknown provider"})`,
      );
    }
  }

  /** A configured provider by name. */
  get(name: string): ModelProvider | undefined {
    return this.providers.get(name);
  }

  /** Names of the configured providers. */
  names(): string[] {
    return [...this.providers.keys()].sort();
  }

  /** The provider and model of a run, or a refusal (INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED). */
  select(input: SelectionInput): ModelSelection {
    const fromRequest = input.requestedProvider !== "";
    const name = input.requestedProvider || input.corpus.provider || this.defaultProvider;
    const provider = this.providers.get(name);
    if (provider === undefined) {
      const why = this.unconfigured.get(name);
      const where = fromRequest ? "options.provider" : "the corpus's provider_config.agent.provider";
      if (why !== undefined) {
        throw domainError("FAILED_PRECONDITION", `${where} names provider ${name}, which this installation has not configured: ${why}`, {
          provider: name,
        });
      }
      const known = this.names().join(", ");
      if (fromRequest)
        throw domainError("INVALID_ARGUMENT", `unknown model provider "${name}"; this installation offers: ${known}`, {
          field: "options.provider",
          provider: name,
        });
      throw domainError("FAILED_PRECONDITION", `the corpus names unknown model provider "${name}"; this installation offers: ${known}`, {
        provider: name,
      });
    }
    const corpusModel = input.corpus.provider === undefined || input.corpus.provider === name ? input.corpus.model : undefined;
    const model = input.requestedModel || corpusModel || provider.defaultModel;
    const rejected = provider.rejectModel(model);
    if (rejected !== undefined) {
      throw domainError("INVALID_ARGUMENT", `model "${model}" cannot be used: ${rejected}`, {
        field: "options.model",
        provider: name,
        model,
      });
    }
    if (provider.remote) this.checkEntitlement(input.principal, name, model);
    return { provider, model };
  }

  private checkEntitlement(principal: TenantPrincipal, provider: string, model: string): void {
    const feature = providerFeature(provider);
    const features = principal.entitlements.features;
    if (Object.hasOwn(features, feature)) {
      requireFeature(principal, feature);
    } else if (!REMOTE_PLANS.has(principal.plan)) {
      throw domainError(
        "FEATURE_NOT_ENABLED",
        `the ${principal.plan} plan cannot use the ${provider} model provider; use the extractive provider or upgrade the plan`,
        { feature_key: feature, plan: principal.plan },
      );
    }
    const models = principal.entitlements.featureConfig[feature]?.models;
    if (Array.isArray(models) && !models.includes(model)) {
      throw domainError(
        "FEATURE_NOT_ENABLED",
        `model ${model} is not among this tenant's allowed ${provider} models: ${models.join(", ")}`,
        {
          feature_key: feature,
          model,
        },
      );
    }
  }
}
