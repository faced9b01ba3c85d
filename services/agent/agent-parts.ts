import { ConfigError } from "../kernel/config.js";
import type { NatsEventBus } from "../kernel/events/index.js";
import { type RetentionTarget, retentionTask, subjectRequestTask } from "../kernel/governance/index.js";
import { createFieldCipher, reencryptTask, type SealedField } from "../kernel/keyring/index.js";
import { CircuitBreaker } from "../kernel/resilience/index.js";
import type { ServiceContext, ServiceParts } from "../kernel/service/index.js";
import { createGrpcCorpusSettings } from "./adapters/grpc-corpus-settings.js";
import { createGrpcQuotaGate } from "./adapters/grpc-quota-gate.js";
import { createGrpcRetriever } from "./adapters/grpc-retriever.js";
import { createGrpcTools } from "./adapters/grpc-tools.js";
import { createPostgresSessionRepository } from "./adapters/postgres-session-repository.js";
import { AgentHandler } from "./agent-handler.js";
import { type AgentSettings, agentSettingsFromConfig } from "./agent-settings.js";
import { createExtractiveProvider } from "./providers/extractive/extractive-provider.js";
import { createOpenAiProvider } from "./providers/openai/openai-provider.js";
import type { ModelProvider } from "./providers/ports.js";
import { ProviderRegistry } from "./providers/provider-registry.js";
import { agentRoutes } from "./routes.js";
import { ActiveRuns } from "./run/active-runs.js";
import { Bulkhead } from "./run/bulkhead.js";
import { RunCancellation } from "./run/run-cancellation.js";
import { RunJournal } from "./run/run-journal.js";
import { RunWatchRelay } from "./run/run-watch-relay.js";
import { agentSubjectContributor } from "./subject-data.js";
import { circuitStateValue, runMetrics } from "./telemetry/run-metrics.js";

/** How long shutdown waits for runs that are still storing their outcome. */
const SHUTDOWN_DRAIN_MS = 10_000;

/** The model providers an installation offers, and those it knows but did not configure. */
function modelProviders(settings: AgentSettings): { providers: ModelProvider[]; unconfigured: Map<string, string> } {
  const providers: ModelProvider[] = [createExtractiveProvider()];
  const unconfigured = new Map<string, string>();
  if (settings.openai) {
    providers.push(
      createOpenAiProvider({
        baseUrl: settings.openai.baseUrl,
        defaultModel: settings.openai.model,
        timeoutMs: settings.modelTimeoutMs,
        ...(settings.openai.apiKey ? { apiKey: settings.openai.apiKey } : {}),
      }),
    );
  } else {
    unconfigured.set("openai", "set NEXUS_OPENAI_BASE_URL (and NEXUS_OPENAI_API_KEY if the server needs one)");
  }
  return { providers, unconfigured };
}

/**
 * Assembles the agent: sessions in the `agent` schema, retrieval and metering over gRPC, model
 * providers from the settings, one bulkhead, one breaker for retrieval and one per remote model
 * provider, and the registry of active runs (CancelRun reaches runs of other replicas through
 * the bus). Shutdown waits (bounded) until the runs still going have stored their outcome.
 */
/** The keyring purpose of session titles and messages. */
export const SESSIONS_PURPOSE = "sessions";

/** What the agent service seals, for the re-encryption job after a key rotation. */
export const AGENT_SEALED_FIELDS: readonly SealedField[] = [
  { name: "agent.sessions.title", purpose: SESSIONS_PURPOSE, table: "agent.sessions", key: ["session_id"], column: "title", kind: "text" },
  { name: "agent.messages.text", purpose: SESSIONS_PURPOSE, table: "agent.messages", key: ["message_id"], column: "text", kind: "text" },
  {
    name: "agent.messages.citations",
    purpose: SESSIONS_PURPOSE,
    table: "agent.messages",
    key: ["message_id"],
    column: "citations",
    kind: "json",
  },
];

/**
 * What the "sessions" retention policy expires: sessions by their last activity (their messages
 * go with them, ON DELETE CASCADE). Anonymizing a session blanks its title and deletes nothing
 * else (the messages are the content; an anonymize policy empties their texts and citations).
 */
const SESSION_OWNER = (column: string) =>
  `(SELECT s.${column} FROM agent.sessions s WHERE s.tenant_id = agent.messages.tenant_id AND s.session_id = agent.messages.session_id)`;

export const AGENT_RETENTION_TARGETS: readonly RetentionTarget[] = [
  {
    category: "sessions",
    table: "agent.sessions",
    idColumn: "session_id",
    timeColumn: "updated_at",
    holdScope: "session",
    // A hold on the key or the user that started the session covers it too.
    moreHolds: [
      { scope: "key", subject: "created_by_key" },
      { scope: "user", subject: "created_by_user" },
    ],
    anonymize: { title: "''" },
  },
  {
    category: "sessions",
    table: "agent.messages",
    idColumn: "message_id",
    timeColumn: "created_at",
    holdScope: "session",
    holdColumn: "session_id",
    moreHolds: [
      { scope: "key", subject: SESSION_OWNER("created_by_key") },
      { scope: "user", subject: SESSION_OWNER("created_by_user") },
    ],
    anonymize: { text: "''", citations: "'[]'::jsonb" },
  },
];

export function createAgentParts(ctx: ServiceContext): ServiceParts {
  const settings = agentSettingsFromConfig(ctx.config);
  const { logger } = ctx;
  // Session titles, messages and their citations are sealed at rest (docs/security.md).
  const sessionsCipher = createFieldCipher(ctx.keyring, SESSIONS_PURPOSE, ctx.config.encryptionAtRest);
  const options = {
    db: ctx.db,
    bus: ctx.bus,
    clock: ctx.clock,
    transports: {
      retrieval: () => ctx.peers.transport("retrieval"),
      metering: () => ctx.peers.transport("metering"),
      modules: () => ctx.peers.transport("modules"),
    },
  };
  const metrics = runMetrics();
  const { providers, unconfigured } = modelProviders(settings);
  let registry: ProviderRegistry;
  try {
    registry = new ProviderRegistry(providers, settings.defaultProvider, unconfigured);
  } catch (err) {
    throw new ConfigError([{ variable: "NEXUS_AGENT_DEFAULT_PROVIDER", message: (err as Error).message }]);
  }
  const breaker = (dependency: string) => {
    const b = new CircuitBreaker({
      dependency,
      failureThreshold: settings.breakerFailures,
      resetTimeoutMs: settings.breakerResetMs,
      onStateChange: (state) => {
        metrics.circuitState.set({ dependency }, circuitStateValue(state));
        logger.warn({ dependency, state }, `circuit breaker ${state}`);
      },
    });
    metrics.circuitState.set({ dependency }, 0);
    return b;
  };
  const retrievalBreaker = breaker("retrieval");
  const modelBreakers = new Map<string, CircuitBreaker>();
  const activeRuns = new ActiveRuns();
  const journal = new RunJournal(settings.runRetainMs ?? 300_000);
  const running = new Set<Promise<void>>();
  const cancellation = new RunCancellation({ db: options.db, activeRuns, clock: options.clock, logger, bus: options.bus });
  const observing = cancellation
    .start()
    .catch((err: unknown) => logger.error({ err }, "could not observe run cancel requests; CancelRun stays within each replica"));
  // WatchRun on any replica: the owner of a run streams it over core NATS (none with the local bus).
  const bus = options.bus;
  const watchRelay = bus?.kind === "nats" ? new RunWatchRelay((bus as NatsEventBus).nats, bus.subjectPrefix, journal, logger) : undefined;
  watchRelay?.start();
  const sessions = createPostgresSessionRepository(sessionsCipher);
  const handler = new AgentHandler({
    db: options.db,
    sessions,
    retriever: createGrpcRetriever(options.transports.retrieval),
    tools: createGrpcTools(options.transports.modules),
    quota: createGrpcQuotaGate(options.transports.metering),
    corpusSettings: createGrpcCorpusSettings(options.transports.retrieval),
    providers: registry,
    breakers: {
      retrieval: retrievalBreaker,
      model(provider) {
        let b = modelBreakers.get(provider.name);
        if (!b) {
          b = breaker(`model:${provider.name}`);
          modelBreakers.set(provider.name, b);
        }
        return b;
      },
    },
    activeRuns,
    journal,
    metrics,
    settings,
    clock: options.clock,
    logger,
    bulkhead: new Bulkhead(settings.maxConcurrentRuns),
    cancellation,
    ...(watchRelay ? { watchRelay } : {}),
    track(finished) {
      running.add(finished);
      void finished.finally(() => running.delete(finished));
    },
  });
  return {
    handlers: [agentRoutes(handler)],
    // After a rotation of a tenant's "sessions" key, agent processes re-encrypt its values.
    tasks: [
      reencryptTask({ db: ctx.db, keyring: ctx.keyring, fields: AGENT_SEALED_FIELDS, mode: ctx.config.encryptionAtRest, logger }),
      // The tenants' "sessions" retention policies (docs/governance.md#retention-and-legal-holds).
      retentionTask({ db: ctx.db, targets: AGENT_RETENTION_TARGETS, intervalMs: ctx.config.retentionIntervalMs, logger }),
      // The "sessions" part of data-subject requests (docs/governance.md#data-subject-requests).
      subjectRequestTask({
        db: ctx.db,
        keyring: ctx.keyring,
        contributor: agentSubjectContributor(sessions),
        intervalMs: ctx.config.subjectRequestIntervalMs,
        logger,
      }),
    ],
    async shutdown() {
      await watchRelay?.stop();
      journal.clear();
      await observing;
      await cancellation.stop();
      if (running.size === 0) return;
      logger.info({ runs: running.size }, "waiting for runs to store their outcome");
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...running]),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, SHUTDOWN_DRAIN_MS);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
