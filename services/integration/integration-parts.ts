import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { EdgeService } from "../../gen/nexus/integration/v1/edge_service_pb.js";
import type { Subscription } from "../kernel/events/ports.js";
import { handle, type ServiceContext, type ServiceParts } from "../kernel/service/index.js";
import { createDestinationDrivers, type DestinationDrivers } from "./adapters/destination-drivers.js";
import { store } from "./adapters/postgres.js";
import { AppKeyCache } from "./app-key-cache.js";
import { connectors } from "./connector-bridge.js";
import { EdgeHandler, TENANT_STATUS_CONSUMER, TENANT_STATUS_SUBJECT, tenantStatusHandler } from "./edge-handler.js";
import { ingressRoutes } from "./http-ingress.js";
import { DEDUPE_WINDOW_MS, DELIVERY_TOPIC, IntegrationApplication, workflowConsumer, workflowTopic } from "./integration-application.js";
import { DELIVERY_CONSUMER, IntegrationHandler, REJECTED_PAYLOAD_CONSUMER } from "./integration-handler.js";
import { INTEGRATION_SCHEMA } from "./migrations.js";
import { createMqttRunner, type MqttRunner } from "./mqtt-sources.js";
import { integrationRoutes } from "./routes.js";

/**
 * A short, stable token of this replica for its MQTT client ids (`nexus-<source>-<token>`): the
 * same after a restart (kill -9 included), so the broker hands the restarted replica the session
 * and the QoS 1 messages queued for it while it was away. Hashed: client ids stay short and do
 * not show host names.
 */
const replicaToken = (replicaId: string) => createHash("sha256").update(replicaId).digest("hex").slice(0, 12);

/** The most retries a destination may set (`DestinationConfig.max_retries`). */
const MAX_DESTINATION_RETRIES = 100;

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
  const apps = new AppKeyCache(ctx.db, ctx.logger);
  apps.start(ctx.bus);
  const app = new IntegrationApplication({
    db: ctx.db,
    publish: (events, o) => ctx.bus.publish(events, o),
    keyring: ctx.keyring,
    drivers,
    connectors,
    clock: ctx.clock,
    logger: ctx.logger,
    maxDeliveries,
    onWorkflowsChanged: () => reconcileSoon(),
    onMqttChanged: () => reconcileSoon(),
    onAppChanged: (id) => apps.forget(id),
  });
  const mqtt = createMqttRunner({
    db: ctx.db,
    app,
    connectors,
    logger: ctx.logger,
    processId: replicaToken(
      config.integrationReplicaId ??
        // An ephemeral port (0) names no replica: such a process gets a session of its own.
        (config.port === 0 ? randomBytes(8).toString("hex") : `${hostname()}-${config.port}`),
    ),
  });
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
  const WORKFLOW_CONSUMER = workflowConsumer("");
  /** Removes a deleted workflow's durable consumer and the messages still stored on its subject. */
  const forgetWorkflow = (id: string) =>
    ctx.bus
      .deleteConsumer(workflowConsumer(id), { purgeTopic: workflowTopic(id) })
      .catch((err: unknown) => ctx.logger.warn({ err, workflow: id }, "could not delete a deleted workflow's consumer; retrying"));
  /**
   * Runs a consumer for every enabled workflow; stops the ones of paused workflows (their
   * durable consumer stays, so their messages wait on the bus) and of deleted ones, whose
   * durable consumer and stored messages it deletes — also those of workflows deleted while
   * this process did not run them (the durable names are listed before the workflows are
   * read: a consumer that exists then belongs to a workflow committed before).
   */
  async function reconcileWorkflows(): Promise<void> {
    if (stopped) return;
    const durable = (await ctx.bus.consumerNames().catch(() => [] as string[])).filter((n) => n.startsWith(WORKFLOW_CONSUMER));
    const rows = await store.workflowStates(ctx.db);
    const existing = new Set(rows.map((r) => r.id));
    const enabled = new Set(rows.filter((r) => r.enabled).map((r) => r.id));
    for (const [id, sub] of subscriptions) {
      if (enabled.has(id)) continue;
      subscriptions.delete(id);
      await (await sub)?.stop();
      if (!existing.has(id)) await forgetWorkflow(id);
    }
    for (const name of durable) {
      const id = name.slice(WORKFLOW_CONSUMER.length);
      if (!existing.has(id)) await forgetWorkflow(id);
    }
    for (const id of enabled) {
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
    httpRoutes: ingressRoutes({ db: ctx.db, app, apps, logger: ctx.logger, maxBytes: config.maxRequestBytes }),
    consumers: [
      { name: TENANT_STATUS_CONSUMER, subject: TENANT_STATUS_SUBJECT, handler: tenantStatusHandler(ctx.clock) },
      {
        name: DELIVERY_CONSUMER,
        subject: DELIVERY_TOPIC,
        concurrency: config.integrationConcurrency,
        ackWaitMs: config.integrationAckWaitMs,
        // Each destination has its own max retries (the handler dead-letters at once when they
        // are used up): the consumer's own limit only catches deliveries that never end.
        maxDeliver: ctx.consumerDefaults?.maxDeliver ?? MAX_DESTINATION_RETRIES + 2,
        backoff: ctx.consumerDefaults?.backoff ?? backoff,
        handler: (event, tx) => app.handleDelivery(event, tx),
        onDeadLettered: (event, error) => app.deliveryDeadLettered(event, error),
      },
      {
        // Parks MQTT payloads that did not parse (the handler always refuses them for good).
        name: REJECTED_PAYLOAD_CONSUMER,
        subject: "integration.mqtt_payload_rejected",
        handler: (event) => app.handleRejectedPayload(event),
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
      await app.settled();
      await apps.close();
      await drivers.close();
    },
  };
}
