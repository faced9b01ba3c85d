import type { JsonObject, JsonValue } from "@bufbuild/protobuf";

/** Retrieval providers a corpus can name. */
export const PROVIDERS = ["local_pgvector", "aws_bedrock_kb", "gcp_vertex"] as const;
/** One of {@link PROVIDERS}. */
export type Provider = (typeof PROVIDERS)[number];

/** The plan feature each provider needs (see the plan catalog in services/kernel/authz/plans.ts). */
export const PROVIDER_FEATURES: Readonly<Record<Provider, string>> = {
  local_pgvector: "feature.retrieval.local_pgvector",
  aws_bedrock_kb: "feature.retrieval.aws_bedrock_kb",
  gcp_vertex: "feature.retrieval.gcp_vertex",
};

/** Feature needed to change an existing corpus's provider_config. */
export const PATCH_PROVIDER_CONFIG_FEATURE = "feature.corpora_patch_provider_config";

/** top_k_default when the config does not say. */
export const DEFAULT_TOP_K = 5;
/** Largest top_k a search (or a corpus default) may ask for. */
export const MAX_TOP_K = 50;

const REQUIRED: Readonly<Record<Provider, readonly string[]>> = {
  local_pgvector: [],
  aws_bedrock_kb: ["knowledge_base_id", "region"],
  gcp_vertex: ["project", "location", "resource_id"],
};

/** Keys that smell like credentials: those come from the installation's secrets, never from a corpus. */
const SECRET_KEY = /(secret|password|passwd|token|credential|private_key|access_key|api_key|apikey)/i;

/** A normalised provider config. */
export interface ProviderConfig {
  provider: Provider;
  topKDefault: number;
  /** `{"retrieval": {...}}` as stored and returned. */
  json: JsonObject;
}

/** Result of {@link normalizeProviderConfig}. */
export type ProviderConfigResult = { kind: "ok"; config: ProviderConfig } | { kind: "invalid"; message: string };

function findSecretKey(value: JsonValue, path: string): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const hit = findSecretKey(v, `${path}[${i}]`);
      if (hit) return hit;
    }
    return undefined;
  }
  for (const [k, v] of Object.entries(value)) {
    if (SECRET_KEY.test(k)) return `${path}.${k}`;
    const hit = findSecretKey(v, `${path}.${k}`);
    if (hit) return hit;
  }
  return undefined;
}

/**
 * Validates and normalises a corpus's provider_config. Unset or `{}` becomes
 * `{"retrieval": {"provider": "local_pgvector", "top_k_default": 5}}`; a provider's required
 * settings must be non-empty strings; top_k_default must be 1-50; keys that look like
 * credentials are refused (credentials come from the installation's secrets).
 */
export function normalizeProviderConfig(input: JsonObject | undefined): ProviderConfigResult {
  const raw = input ?? {};
  const secret = findSecretKey(raw, "provider_config");
  if (secret) {
    return { kind: "invalid", message: `${secret}: credentials never go into provider_config; the installation's secrets provide them` };
  }
  const extra = Object.keys(raw).filter((k) => k !== "retrieval" && k !== "agent");
  if (extra.length > 0)
    return { kind: "invalid", message: `provider_config: unknown key "${extra[0]}" (expected "retrieval" and "agent")` };
  const agent = normalizeAgentSection(raw.agent);
  if (typeof agent === "string") return { kind: "invalid", message: agent };
  const retrieval = raw.retrieval ?? {};
  if (retrieval === null || typeof retrieval !== "object" || Array.isArray(retrieval)) {
    return { kind: "invalid", message: "provider_config.retrieval must be an object" };
  }
  const provider = retrieval.provider ?? "local_pgvector";
  if (typeof provider !== "string" || !(PROVIDERS as readonly string[]).includes(provider)) {
    return { kind: "invalid", message: `provider_config.retrieval.provider must be one of ${PROVIDERS.join(", ")}` };
  }
  const p = provider as Provider;
  const topK = retrieval.top_k_default ?? DEFAULT_TOP_K;
  if (typeof topK !== "number" || !Number.isInteger(topK) || topK < 1 || topK > MAX_TOP_K) {
    return { kind: "invalid", message: `provider_config.retrieval.top_k_default must be an integer from 1 to ${MAX_TOP_K}` };
  }
  for (const key of REQUIRED[p]) {
    const v = retrieval[key];
    if (typeof v !== "string" || v.trim() === "") {
      return { kind: "invalid", message: `provider_config.retrieval.${key} is required for provider ${p}` };
    }
  }
  const allowed = new Set(["provider", "top_k_default", ...REQUIRED[p]]);
  const unknown = Object.keys(retrieval).find((k) => !allowed.has(k));
  if (unknown) return { kind: "invalid", message: `provider_config.retrieval.${unknown} is not a setting of provider ${p}` };
  const normalized: JsonObject = { provider: p, top_k_default: topK };
  for (const key of REQUIRED[p]) normalized[key] = (retrieval[key] as string).trim();
  const json: JsonObject = agent ? { retrieval: normalized, agent } : { retrieval: normalized };
  return { kind: "ok", config: { provider: p, topKDefault: topK, json } };
}

/** Model providers the agent knows (services/agent/providers). */
const AGENT_PROVIDERS = ["extractive", "openai"] as const;

/**
 * The corpus's model settings for the agent: `{"agent": {"provider": "openai", "model": "…"}}`.
 * The agent reads them through GetCorpus and checks the caller's plan when it runs; here only
 * their shape is checked. Returns the normalised section, undefined when absent, or an error.
 */
function normalizeAgentSection(section: unknown): JsonObject | undefined | string {
  if (section === undefined) return undefined;
  if (section === null || typeof section !== "object" || Array.isArray(section)) return "provider_config.agent must be an object";
  const a = section as JsonObject;
  const unknown = Object.keys(a).find((k) => k !== "provider" && k !== "model");
  if (unknown) return `provider_config.agent.${unknown} is not a setting (expected provider and model)`;
  const out: JsonObject = {};
  if (a.provider !== undefined) {
    if (typeof a.provider !== "string" || !(AGENT_PROVIDERS as readonly string[]).includes(a.provider)) {
      return `provider_config.agent.provider must be one of ${AGENT_PROVIDERS.join(", ")}`;
    }
    out.provider = a.provider;
  }
  if (a.model !== undefined) {
    if (typeof a.model !== "string" || a.model.trim() === "" || a.model.length > 200) {
      return "provider_config.agent.model must be a model name of 1-200 characters";
    }
    out.model = a.model.trim();
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Reads a stored (already normalised) config. */
export function storedProviderConfig(json: JsonObject): ProviderConfig {
  const result = normalizeProviderConfig(json);
  if (result.kind !== "ok") throw new Error(`stored provider_config is invalid: ${result.message}`);
  return result.config;
}
