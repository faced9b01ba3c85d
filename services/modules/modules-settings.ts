import type { NexusConfig } from "../kernel/config.js";

/** The modules service's tunables: the installation's caps of every tool call. */
export interface ModulesSettings {
  /** NEXUS_MODULES_TIMEOUT_MS. Default 5 000 ms. */
  timeoutMs: number;
  /** NEXUS_MODULES_CPU_MS. Default 1 000 ms. */
  cpuMs: number;
  /** NEXUS_MODULES_MEMORY_BYTES. Default 32 MiB. */
  memoryBytes: number;
  /** NEXUS_MODULES_MAX_REQUESTS. Default 20. */
  maxRequests: number;
  /** NEXUS_MODULES_CACHE_ENTRIES. Default 1 000. */
  cacheEntries: number;
  /** NEXUS_MODULES_EGRESS_ALLOW_PRIVATE: declared hosts allowed to resolve to non-public addresses. Default none. */
  egressAllowPrivate: readonly string[];
  /** NEXUS_MODULES_SANDBOX_WORKERS. Default 2. */
  sandboxWorkers: number;
  /** Largest response body the egress broker reads. 1 MiB. */
  maxResponseBytes: number;
  /** Tests of one version run at most this long together. 60 s. */
  testBudgetMs: number;
}

/** The settings from the process configuration. */
export function modulesSettingsFromConfig(config: NexusConfig): ModulesSettings {
  return {
    timeoutMs: config.modulesTimeoutMs,
    cpuMs: config.modulesCpuMs,
    memoryBytes: config.modulesMemoryBytes,
    maxRequests: config.modulesMaxRequests,
    cacheEntries: config.modulesCacheEntries,
    sandboxWorkers: config.modulesSandboxWorkers,
    egressAllowPrivate: config.modulesEgressAllowPrivate ?? [],
    maxResponseBytes: 1 << 20,
    testBudgetMs: 60_000,
  };
}
