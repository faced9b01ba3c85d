import { randomBytes } from "node:crypto";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import type { Subscription } from "../kernel/events/ports.js";
import { handle, type ServiceContext, type ServiceParts } from "../kernel/service/index.js";
import { createDestinationDrivers, type DestinationDrivers } from "./adapters/destination-drivers.js";
import { store } from "./adapters/postgres.js";
import { connectors } from "./connector-bridge.js";
import { EdgeHandler, TENANT_STATUS_CONSUMER, TENANT_STATUS_SUBJECT, tenantStatusHandler } from "./edge-handler.js";
import { ingressRoutes } from "./http-ingress.js";
import { DEDUPE_WINDOW_MS, DELIVERY_TOPIC, IntegrationApplication, workflowConsumer, workflowTopic } from "./integration-application.js";
import { DELIVERY_CONSUMER, IntegrationHandler } from "./integration-handler.js";
import { INTEGRATION_SCHEMA } from "./migrations.js";
import { createMqttRunner, type MqttRunner } from "./mqtt-sources.js";
import { integrationRoutes } from "./routes.js";

/** Integration's parts, with the application inside (tests call it directly). */
export interface IntegrationParts extends ServiceParts {
  app: IntegrationApplication;
  drivers: DestinationDrivers;
  mqtt: MqttRunner;
  handler: IntegrationHandler;
  /** Subscribes the consumers of new workflows and starts new MQTT sources now (also runs every 2 s). */
  reconcile(): Promise<void>;
}

/** Options of {@link createIntegrationParts} (tests shorten the timings). */
export interface IntegrationPartsOptions {
  /** Default 2 000 ms. */
  reconcileIntervalMs?: number;
  /** Default 500 ms. */
  tailIntervalMs?: number;
}

/**
 * Assembles integration: the application, the handler, the ingress endpoints, the durable
 * delivery consumer (declared, so the kernel runs it) and — because workflows come and go at
 * runtime — one durable consumer per workflow on its own subject, subscribed by a reconcile
 * task (every replica subscribes the same durable names, so they share the work), plus the
 * MQTT sources and the dedupe/retention sweep.
 */
export function createIntegrationParts(ctx: ServiceContext, options: IntegrationPartsOptions = {}): IntegrationParts {
  const config = ctx.config;
  const maxDeliveries = config.integrationMaxRetries + 1;
  const backoff = { initialMs: config.integrationRetryInitialMs, maxMs: config.integrationRetryMaxMs, jitter: true };
  const drivers = createDestinationDrivers({
    logger: ctx.logger,
    connectors,
    natsServers: config.natsUrl,
    ingestion: () => ctx.peers.transport("ingestion"),
  });
  let reconcileSoon = () => {};
  const app = new IntegrationApplication({
    db: ctx.db,
    keyring: ctx.keyring,
    drivers,
    connectors,
    clock: ctx.clock,
    logger: ctx.logger,
    maxDeliveries,
    onWorkflowsChanged: () => reconcileSoon(),
    onMqttChanged: () => reconcileSoon(),
  });
  const mqtt = createMqttRunner({ db: ctx.db, app, connectors, logger: ctx.logger, processId: randomBytes(4).toString("hex") });
  const handler = new IntegrationHandler({
    app,
    db: ctx.db,
    drivers,
    deadLetters: ctx.bus.deadLetters,
    mqtt,
    subjectPrefix: ctx.bus.subjectPrefix,
    ...(options.tailIntervalMs ? { tailIntervalMs: options.tailIntervalMs } : {}),
  });

  const subscriptions = new Map<string, Promise<Subscription | undefined>>();
  let stopped = false;
  async function reconcileWorkflows(): Promise<void> {
    if (stopped) return;
    const ids = new Set(await store.allWorkflowIds(ctx.db));
    for (const [id, sub] of subscriptions) {
      if (!ids.has(id)) {
        subscriptions.delete(id);
        await (await sub)?.stop();
      }
    }
    for (const id of ids) {
      if (subscriptions.has(id)) continue;
      const sub = ctx.bus
        .subscribe({
          name: workflowConsumer(id),
          subject: workflowTopic(id),
          db: ctx.db,
          schema: INTEGRATION_SCHEMA,
          concurrency: config.integrationConcurrency,
          ackWaitMs: config.integrationAckWaitMs,
          maxDeliver: ctx.consumerDefaults?.maxDeliver ?? config.maxDeliver,
          backoff: ctx.consumerDefaults?.backoff ?? backoff,
          handler: (event, tx) => app.handleWorkflowMessage(event, tx),
        })
        .catch((err: unknown) => {
          ctx.logger.warn({ err, workflow: id }, "workflow consumer could not subscribe; retrying");
          subscriptions.delete(id);
          return undefined;
        });
      subscriptions.set(id, sub);
    }
    await Promise.all(subscriptions.values());
  }
  async function reconcile(): Promise<void> {
    await reconcileWorkflows();
    await mqtt.reconcile();
  }
  let pending: Promise<void> | undefined;
  reconcileSoon = () => {
    pending ??= reconcile()
      .catch((err: unknown) => ctx.logger.warn({ err }, "integration reconcile failed"))
      .finally(() => {
        pending = undefined;
      });
  };
  reconcileSoon();

  return {
    app,
    drivers,
    mqtt,
    handler,
    reconcile,
    handlers: [
      integrationRoutes(handler),
      handle(EdgeService, new EdgeHandler({ db: ctx.db, app, clock: ctx.clock, logger: ctx.logger }) as never),
    ],
    httpRoutes: ingressRoutes({ db: ctx.db, app, logger: ctx.logger, maxBytes: config.maxRequestBytes }),
    consumers: [
      { name: TENANT_STATUS_CONSUMER, subject: TENANT_STATUS_SUBJECT, handler: tenantStatusHandler(ctx.clock) },
      {
        name: DELIVERY_CONSUMER,
        subject: DELIVERY_TOPIC,
        concurrency: config.integrationConcurrency,
        ackWaitMs: config.integrationAckWaitMs,
        maxDeliver: ctx.consumerDefaults?.maxDeliver ?? maxDeliveries,
        backoff: ctx.consumerDefaults?.backoff ?? backoff,
        handler: (event, tx) => app.handleDelivery(event, tx),
      },
    ],
    tasks: [
      { name: "integration reconcile", intervalMs: options.reconcileIntervalMs ?? 2_000, run: reconcile },
      { name: "integration retention sweep", intervalMs: 10 * 60_000, run: () => store.sweep(ctx.db, ctx.clock(), DEDUPE_WINDOW_MS) },
    ],
    async shutdown() {
      stopped = true;
      await pending;
      await Promise.allSettled([...subscriptions.values()].map(async (s) => (await s)?.stop()));
      subscriptions.clear();
      await mqtt.close();
      await drivers.close();
    },
  };
}
