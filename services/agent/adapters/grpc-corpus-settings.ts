import type { JsonValue } from "@bufbuild/protobuf";
import { createClient, type Transport } from "@connectrpc/connect";
import { RetrievalService } from "../../../gen/nexus/retrieval/v1/retrieval_service_pb.js";
import type { CorpusModelSettings, CorpusSettingsSource } from "../ports.js";

/** Options of {@link createGrpcCorpusSettings}. */
export interface GrpcCorpusSettingsOptions {
  /** How long a corpus's settings are reused. Default 30 000 ms. */
  ttlMs?: number;
  /** Most corpora remembered. Default 1 000. */
  maxEntries?: number;
  now?: () => number;
}

/**
 * Reads a corpus's model settings from its provider_config's `agent` section —
 * `{"agent": {"provider": "openai", "model": "gpt-4o-mini"}}` — through the retrieval
 * service's GetCorpus (with the caller's credentials), cached per tenant and corpus for a
 * short time so runs do not pay a second call. A corpus without the section names nothing.
 */
export function createGrpcCorpusSettings(transport: () => Transport, options: GrpcCorpusSettingsOptions = {}): CorpusSettingsSource {
  const ttlMs = options.ttlMs ?? 30_000;
  const maxEntries = options.maxEntries ?? 1000;
  const now = options.now ?? (() => Date.now());
  const cache = new Map<string, { settings: CorpusModelSettings; until: number }>();
  return {
    async modelSettings(tenantId, corpusId, call) {
      const key = `${tenantId}\u0000${corpusId}`;
      const hit = cache.get(key);
      if (hit && hit.until > now()) return hit.settings;
      const client = createClient(RetrievalService, transport());
      const res = await client.getCorpus(
        { corpusId },
        { headers: call.headers, signal: call.signal, ...(call.timeoutMs !== undefined ? { timeoutMs: call.timeoutMs } : {}) },
      );
      const settings = agentSection(res.corpus?.providerConfig as JsonValue | undefined);
      cache.delete(key);
      cache.set(key, { settings, until: now() + ttlMs });
      while (cache.size > maxEntries) {
        const oldest = cache.keys().next();
        if (oldest.done) break;
        cache.delete(oldest.value);
      }
      return settings;
    },
  };
}

/** The `agent` section of a provider_config, if it names a provider or model. */
export function agentSection(config: JsonValue | undefined): CorpusModelSettings {
  if (config === null || typeof config !== "object" || Array.isArray(config)) return {};
  const agent = config.agent;
  if (agent === null || typeof agent !== "object" || Array.isArray(agent)) return {};
  const out: CorpusModelSettings = {};
  if (typeof agent.provider === "string" && agent.provider !== "") out.provider = agent.provider;
  if (typeof agent.model === "string" && agent.model !== "") out.model = agent.model;
  return out;
}
