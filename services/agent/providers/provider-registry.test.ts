import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { TenantPrincipal } from "../../kernel/context.js";
import { errorMetadata, errorReason } from "../../kernel/errors.js";
import { createExtractiveProvider, EXTRACTIVE_MODEL } from "./extractive/extractive-provider.js";
import { createOpenAiProvider } from "./openai/openai-provider.js";
import { ProviderRegistry, type SelectionInput } from "./provider-registry.js";

function principal(
  plan: TenantPrincipal["plan"],
  features: Record<string, boolean> = {},
  featureConfig: Record<string, Record<string, unknown>> = {},
): TenantPrincipal {
  return {
    kind: "tenant",
    keyId: "k",
    name: "key",
    tenantId: "t1",
    tenantSlug: "t1",
    role: "viewer",
    plan,
    entitlements: { features, featureConfig, monthlyRunAllowance: undefined, maxActiveApiKeys: undefined },
  };
}

const extractive = createExtractiveProvider();
const openai = createOpenAiProvider({ baseUrl: "http://127.0.0.1:9/v1", defaultModel: "gpt-4o-mini" });

function input(over: Partial<SelectionInput> = {}): SelectionInput {
  return { requestedProvider: "", requestedModel: "", corpus: {}, principal: principal("pro"), ...over };
}

function refusal(fn: () => unknown): ConnectError {
  try {
    fn();
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a refusal");
}

describe("provider registry", () => {
  const registry = new ProviderRegistry([extractive, openai], "extractive");

  it("uses the installation default when neither request nor corpus names a provider", () => {
    const s = registry.select(input());
    expect([s.provider.name, s.model]).toEqual(["extractive", EXTRACTIVE_MODEL]);
  });

  it("prefers the request over the corpus, and the corpus over the default", () => {
    expect(registry.select(input({ corpus: { provider: "openai", model: "corpus-model" } })).model).toBe("corpus-model");
    const s = registry.select(input({ requestedProvider: "extractive", corpus: { provider: "openai", model: "corpus-model" } }));
    expect([s.provider.name, s.model]).toEqual(["extractive", EXTRACTIVE_MODEL]);
    expect(registry.select(input({ requestedProvider: "openai", requestedModel: "m2" })).model).toBe("m2");
    expect(registry.select(input({ requestedProvider: "openai" })).model).toBe("gpt-4o-mini");
  });

  it("refuses unknown providers and foreign models with INVALID_ARGUMENT", () => {
    expect(refusal(() => registry.select(input({ requestedProvider: "nope" }))).code).toBe(Code.InvalidArgument);
    expect(refusal(() => registry.select(input({ requestedModel: "gpt-4o" }))).code).toBe(Code.InvalidArgument);
  });

  it("refuses an unconfigured provider with FAILED_PRECONDITION", () => {
    const local = new ProviderRegistry([extractive], "extractive", new Map([["openai", "set NEXUS_OPENAI_BASE_URL"]]));
    const err = refusal(() => local.select(input({ requestedProvider: "openai" })));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toContain("NEXUS_OPENAI_BASE_URL");
  });

  it("keeps remote providers to entitled tenants", () => {
    const free = refusal(() => registry.select(input({ requestedProvider: "openai", principal: principal("free") })));
    expect(free.code).toBe(Code.PermissionDenied);
    expect(errorReason(free)).toBe("FEATURE_NOT_ENABLED");
    expect(errorMetadata(free).feature_key).toBe("feature.agent.openai");
    // Once the catalog knows the key, it decides, whatever the plan.
    expect(
      registry.select(input({ requestedProvider: "openai", principal: principal("free", { "feature.agent.openai": true }) })).provider.name,
    ).toBe("openai");
    expect(
      refusal(() =>
        registry.select(input({ requestedProvider: "openai", principal: principal("enterprise", { "feature.agent.openai": false }) })),
      ).code,
    ).toBe(Code.PermissionDenied);
    // The local provider is open to everyone.
    expect(registry.select(input({ principal: principal("free") })).provider.name).toBe("extractive");
  });

  it("restricts models to the entitlement's list", () => {
    const p = principal("pro", { "feature.agent.openai": true }, { "feature.agent.openai": { models: ["small"] } });
    expect(registry.select(input({ requestedProvider: "openai", requestedModel: "small", principal: p })).model).toBe("small");
    expect(errorReason(refusal(() => registry.select(input({ requestedProvider: "openai", requestedModel: "big", principal: p }))))).toBe(
      "FEATURE_NOT_ENABLED",
    );
  });
});
