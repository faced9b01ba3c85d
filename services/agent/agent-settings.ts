import type { NexusConfig } from "../kernel/config.js";
import type { RunSettings } from "./run/run-context.js";

/** Everything the agent takes from the configuration. */
export interface AgentSettings extends RunSettings {
  /** NEXUS_AGENT_MAX_CONCURRENT_RUNS. */
  maxConcurrentRuns: number;
  /** NEXUS_AGENT_MODEL_TIMEOUT_MS. */
  modelTimeoutMs: number;
  /** NEXUS_AGENT_BREAKER_FAILURES. */
  breakerFailures: number;
  /** NEXUS_AGENT_BREAKER_RESET_MS. */
  breakerResetMs: number;
  /** NEXUS_AGENT_DEFAULT_PROVIDER. */
  defaultProvider: string;
  /** NEXUS_OPENAI_BASE_URL, NEXUS_OPENAI_MODEL, NEXUS_OPENAI_API_KEY (absent: openai off). */
  openai?: { baseUrl: string; model: string; apiKey?: string };
}

/** Timeout of the small calls around a run (quota check, corpus settings, settling the quota). */
export const PEER_CALL_TIMEOUT_MS = 5_000;

/** The agent's settings from the configuration. */
export function agentSettingsFromConfig(config: NexusConfig): AgentSettings {
  return {
    heartbeatMs: config.agentHeartbeatMs,
    resumeGraceMs: config.agentResumeGraceMs,
    runRetainMs: config.agentRunRetainMs,
    history: { turns: config.agentHistoryTurns, chars: config.agentHistoryChars },
    retrievalTimeoutMs: config.agentRetrievalTimeoutMs,
    toolTimeoutMs: config.agentToolTimeoutMs,
    peerTimeoutMs: PEER_CALL_TIMEOUT_MS,
    quotaFailOpen: config.agentQuotaFailOpen,
    maxConcurrentRuns: config.agentMaxConcurrentRuns,
    modelTimeoutMs: config.agentModelTimeoutMs,
    breakerFailures: config.agentBreakerFailures,
    breakerResetMs: config.agentBreakerResetMs,
    defaultProvider: config.agentDefaultProvider,
    ...(config.openaiBaseUrl
      ? {
          openai: {
            baseUrl: config.openaiBaseUrl,
            model: config.openaiModel,
            ...(config.openaiApiKey ? { apiKey: config.openaiApiKey } : {}),
          },
        }
      : {}),
  };
}
