import { createHash, randomUUID } from "node:crypto";
import { create, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  DeliveryRequestedSchema,
  DestinationChangedSchema,
  MqttPayloadRejectedSchema,
  MqttSourceChangedSchema,
  SenderAppChangedSchema,
  WorkflowMessageAcceptedSchema,
} from "../../gen/nexus/events/v1/integration_events_pb.js";
import {
  type DestinationConfig,
  OnError,
  SqlEngine,
  StepType,
  type WorkflowDefinition,
  WorkflowDefinitionSchema,
  WorkflowKind,
} from "../../gen/nexus/integration/v1/resources_pb.js";
import { executeCommand, recordFacts } from "../kernel/commands/index.js";
import type { Database, Queryable, Tx } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { type DeliveredEvent, type EventBus, eventOf, PermanentFailure, payloadOf } from "../kernel/events/index.js";
import type { Keyring } from "../kernel/keyring/index.js";
import { backoffDelayMs } from "../kernel/resilience/backoff.js";
import { type DestinationDrivers, type DestinationRecord, evaluate, kindOf, splitSecret } from "./adapters/destination-drivers.js";
import { type AppRow, type DestinationRow, isUniqueViolation, type MqttRow, store, type WorkflowRow } from "./adapters/postgres.js";
import { workflowAggregate } from "./adapters/workflow-aggregate.js";
import type { Connectors } from "./connector-bridge.js";
import { ConnectorError } from "./connectors/ports.js";
import { generateAppKey, newId } from "./domain/app-key.js";
import { checkDefinition, DEFAULT_RETENTION_HOURS, type DestinationKind } from "./domain/definition.js";
import { type AppField, validatePayload } from "./domain/field-schema.js";
import { markerForChange, markerForCreate } from "./domain/kubernetes-managed.js";
import { EnvelopeError, envelopeVersion, newMasterSecret, openPayload } from "./domain/payload-crypto.js";
import { type Accepted, type Feed, IngressQueue, messageEventId } from "./ingress-queue.js";

export { DEDUPE_WINDOW_MS, workflowTopic } from "./ingress-queue.js";
/** Durable consumer name of a workflow. */
export const workflowConsumer = (workflowId: string) => `integration-wf-${workflowId}`;
/** Topic of fan-out deliveries. */
export const DELIVERY_TOPIC = "integration.delivery_requested";

/** Keyring purposes of the secrets this service seals. */
const PURPOSE = { appSecret: "integration.app_secret", destination: "integration.destination", mqtt: "integration.mqtt" } as const;

/** Who makes a change (audit). */
export interface Actor {
  tenantId: string;
  /** Key id (or "system", "app:<id>"). */
  actor: string;
  /** The caller is a platform principal (may set the Kubernetes marker). */
  platform?: boolean;
  /** The Kubernetes resource the request speaks for (the operator's reconcile); see domain/kubernetes-managed.ts. */
  kubernetesResource?: string;
}

/** Options of {@link IntegrationApplication}. */
export interface IntegrationApplicationOptions {
  db: Database;
  /** Publishes accepted messages straight to the bus (`ctx.bus.publish`). */
  publish: EventBus["publish"];
  keyring: Keyring;
  drivers: DestinationDrivers;
  connectors: () => Promise<Connectors>;
  clock: () => Date;
  logger: Logger;
  /** Fan-out deliveries before dead-lettering (max retries + 1), for a destination without its own max retries. */
  maxDeliveries: number;
  /** Called after a workflow was created or deleted (subscribes its consumer at once). */
  onWorkflowsChanged?: () => void;
  /** Called after an MQTT source was created or deleted. */
  onMqttChanged?: () => void;
  /** Called after a sender app changed (key rotated, deleted, …): cached keys are dropped. */
  onAppChanged?: (appId: string) => void;
}

function invalid(field: string, message: string) {
  return domainError("INVALID_ARGUMENT", `${field}: ${message}`, { field });
}
function notFound(what: string, id: string) {
  return domainError("NOT_FOUND", `no ${what} ${id} in this tenant`, { [`${what.replace(/ /g, "_")}_id`]: id });
}
function taken(what: string, name: string) {
  return domainError("ALREADY_EXISTS", `a ${what} named ${JSON.stringify(name)} already exists in this tenant`, { name });
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object")
    return `{${Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(value);
}

export type { Accepted } from "./ingress-queue.js";

/**
 * The integration service's application: management of apps, destinations, workflows and MQTT
 * sources (each change with its audited event, in one transaction), ingress (validate, decrypt,
 * dedupe, queue durably) and the workflow runner (fan-out expansion, deliveries, sequential runs).
 */
/** A message's dedupe key (REL-05): its client message id, else the SHA-1 of its canonical JSON. */
const dedupeKeyOf = (data: Record<string, unknown>, clientMessageId: string) =>
  clientMessageId ? `cid:${clientMessageId}` : `sha1:${createHash("sha1").update(canonicalJson(data)).digest("hex")}`;

export class IntegrationApplication {
  /** Accepted messages go to the bus together (see {@link IngressQueue}). */
  private readonly accepts: IngressQueue;

  constructor(private readonly o: IntegrationApplicationOptions) {
    this.accepts = new IngressQueue({ db: o.db, publish: o.publish, clock: o.clock, logger: o.logger });
  }

  private meta(a: Actor) {
    return { metadata: { tenantId: a.tenantId, actor: a.actor } };
  }

  // ---- sender apps ----

  async createApp(a: Actor, input: { name: string; fields: AppField[]; encryptionRequired: boolean }) {
    const id = newId();
    const key = generateAppKey(id);
    const secret = input.encryptionRequired ? newMasterSecret() : "";
    const masterSecrets: Record<string, string> = secret
      ? { "1": await this.o.keyring.sealText({ tenantId: a.tenantId, purpose: PURPOSE.appSecret }, secret) }
      : {};
    const row: AppRow = {
      id,
      tenantId: a.tenantId,
      name: input.name,
      fields: input.fields,
      encryptionRequired: input.encryptionRequired,
      keyPrefix: key.displayPrefix,
      keyVersion: secret ? 1 : 0,
      retiredBefore: 0,
      masterSecrets,
      kubernetesResource: markerForCreate(a),
      createdAt: this.o.clock(),
    };
    try {
      await this.o.db.transaction(async (tx) => {
        await store.insertApp(tx, row, key.digest);
        await this.appEvent(tx, a, row, "created");
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw taken("sender app", input.name);
      throw err;
    }
    return { app: row, appKey: key.plaintext, masterSecret: secret };
  }

  private appEvent(tx: Tx, a: Actor, row: AppRow, change: string) {
    return recordFacts(
      tx,
      `integration_app-${row.id}`,
      [eventOf(SenderAppChangedSchema, { tenantId: row.tenantId, appId: row.id, change, name: row.name, keyVersion: row.keyVersion })],
      this.meta(a),
    );
  }

  async getApp(tenantId: string, appId: string): Promise<AppRow> {
    const row = await store.app(this.o.db, tenantId, appId);
    if (!row) throw notFound("sender app", appId);
    return row;
  }

  listApps(tenantId: string) {
    return store.apps(this.o.db, tenantId);
  }

  private async changeApp<R>(
    a: Actor,
    appId: string,
    change: string,
    fn: (row: AppRow) => Promise<{ row: AppRow; digest?: Buffer; result: R }>,
  ): Promise<R> {
    try {
      const result = await this.o.db.transaction(async (tx) => {
        const row = await store.app(tx, a.tenantId, appId, true);
        if (!row) throw notFound("sender app", appId);
        const kubernetesResource = markerForChange("sender app", row, a);
        const next = await fn({ ...row, kubernetesResource });
        await store.updateApp(tx, next.row, next.digest);
        await this.appEvent(tx, a, next.row, change);
        return next.result;
      });
      this.o.onAppChanged?.(appId);
      return result;
    } catch (err) {
      if (isUniqueViolation(err)) throw domainError("ALREADY_EXISTS", "another sender app of this tenant has that name");
      throw err;
    }
  }

  updateApp(a: Actor, appId: string, input: { name: string; fields: AppField[] }) {
    return this.changeApp(a, appId, "updated", async (row) => {
      const next = { ...row, name: input.name, fields: input.fields };
      return { row: next, result: next };
    });
  }

  rotateAppKey(a: Actor, appId: string) {
    return this.changeApp(a, appId, "key_rotated", async (row) => {
      const key = generateAppKey(row.id);
      return { row, digest: key.digest, result: key.plaintext };
    });
  }

  rotateMasterSecret(a: Actor, appId: string, retireBefore: number) {
    return this.changeApp(a, appId, "secret_rotated", async (row) => {
      const secret = newMasterSecret();
      const version = row.keyVersion + 1;
      if (retireBefore > version) throw invalid("retire_before", `must be at most the new version ${version}`);
      const sealed = await this.o.keyring.sealText({ tenantId: a.tenantId, purpose: PURPOSE.appSecret }, secret);
      const masterSecrets: Record<string, string> = {};
      for (const [v, s] of Object.entries(row.masterSecrets)) if (Number(v) >= retireBefore) masterSecrets[v] = s;
      masterSecrets[String(version)] = sealed;
      const next = {
        ...row,
        keyVersion: version,
        retiredBefore: Math.max(row.retiredBefore, retireBefore),
        masterSecrets,
        encryptionRequired: true,
      };
      return { row: next, result: { version, secret } };
    });
  }

  async deleteApp(a: Actor, appId: string): Promise<void> {
    await this.o.db.transaction(async (tx) => {
      const found = await store.app(tx, a.tenantId, appId, true);
      if (!found) throw notFound("sender app", appId);
      markerForChange("sender app", found, a);
      const row = await store.deleteApp(tx, a.tenantId, appId);
      if (!row) throw notFound("sender app", appId);
      await this.appEvent(tx, a, row, "deleted");
    });
    this.o.onAppChanged?.(appId);
  }

  // ---- ingress ----

  /**
   * Accepts a message from a sender app: decrypts it when the app requires encryption, checks
   * its field schema, claims its dedupe key (client message id, else the SHA-1 of its canonical
   * JSON) and queues it for every workflow the app feeds — in one transaction, so accepted
   * means durable.
   */
  async ingest(app: AppRow, payload: unknown, clientMessageId: string, actor: string): Promise<Accepted> {
    const data = await this.payloadOf(app, payload);
    return this.accept(app.tenantId, `app:${app.id}`, data, clientMessageId, actor, { appId: app.id });
  }

  /**
   * Accepts a batch of one app's messages in the order given (an edge agent's forwarded queue,
   * docs/edge.md): every payload is opened and checked first, then the valid ones are claimed
   * and published to the bus in this order, in one ingress batch. A message refused for good
   * (bad payload) settles as its error and does not stop the others; anything else (the
   * database or the bus away) rejects the whole batch, which the edge then sends again (the
   * dedupe keys make that safe).
   */
  async ingestOrdered(
    app: AppRow,
    items: ReadonlyArray<{ payload: unknown; clientMessageId: string }>,
    actor: string,
  ): Promise<Array<Accepted | ConnectError>> {
    const prepared: Array<Record<string, unknown> | ConnectError> = [];
    for (const it of items) {
      try {
        prepared.push(await this.payloadOf(app, it.payload));
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        prepared.push(err);
      }
    }
    // The valid ones go to the ingress queue as one ordered group: claimed together and
    // published to the bus in this order, in one batch (never split across batches in flight).
    const valid = prepared.flatMap((p, i) =>
      p instanceof ConnectError ? [] : [{ data: p, clientMessageId: items[i]?.clientMessageId ?? "" }],
    );
    const accepted = await this.accepts.submitOrdered(
      valid.map((v) => ({
        tenantId: app.tenantId,
        source: `app:${app.id}`,
        dedupeKey: dedupeKeyOf(v.data, v.clientMessageId),
        data: v.data,
        actor,
        feed: { appId: app.id },
      })),
    );
    let next = 0;
    return prepared.map((p) => (p instanceof ConnectError ? p : (accepted[next++] as Accepted)));
  }

  /** The payload a sender app's message carries: opened when the app requires encryption, checked against its field schema. */
  private async payloadOf(app: AppRow, payload: unknown): Promise<Record<string, unknown>> {
    let data: Record<string, unknown>;
    if (app.encryptionRequired) {
      try {
        const kv = envelopeVersion(payload);
        const sealed = kv >= app.retiredBefore ? app.masterSecrets[String(kv)] : undefined;
        if (!sealed)
          throw new EnvelopeError(
            "payload.kv",
            `master secret version ${kv} of this app is unknown or retired (current: ${app.keyVersion})`,
          );
        const secret = await this.o.keyring.openText({ tenantId: app.tenantId, purpose: PURPOSE.appSecret }, sealed);
        data = openPayload(app.id, secret, payload);
      } catch (err) {
        if (err instanceof EnvelopeError) throw domainError("INVALID_ARGUMENT", `${err.field}: ${err.message}`, { field: err.field });
        throw err;
      }
    } else {
      if (typeof payload !== "object" || payload === null || Array.isArray(payload)) throw invalid("payload", "must be a JSON object");
      data = payload as Record<string, unknown>;
    }
    const problems = validatePayload(app.fields, data);
    if (problems.length > 0) {
      const first = problems[0] as { field: string; message: string };
      throw domainError(
        "INVALID_ARGUMENT",
        `payload.${first.field} ${first.message}${
          problems.length > 1
            ? ` (and ${problems.length - 1} more: ${problems
                .slice(1)
                .map((p) => p.field)
                .join(", ")})`
            : ""
        }`,
        { field: `payload.${first.field}` },
      );
    }
    return data;
  }

  /** Queues one message for one workflow (ExecuteWorkflow, `POST /execute/<id>`). */
  async execute(
    tenantId: string,
    workflowId: string,
    payload: Record<string, unknown>,
    clientMessageId: string,
    actor: string,
  ): Promise<Accepted> {
    if (!(await store.workflow(this.o.db, tenantId, workflowId))) throw notFound("workflow", workflowId);
    return this.accept(tenantId, `execute:${workflowId}`, payload, clientMessageId, actor, { workflowId });
  }

  /** Queues an MQTT message for the workflows its source feeds; `messageKey` dedupes redeliveries. */
  async acceptMqtt(source: MqttRow, payload: unknown, topic: string, messageKey: string): Promise<Accepted> {
    const data =
      typeof payload === "object" && payload !== null && !Array.isArray(payload)
        ? (payload as Record<string, unknown>)
        : { value: payload };
    return this.accept(source.tenantId, `mqtt:${source.id}`, { ...data, _topic: topic }, messageKey, `mqtt:${source.id}`, {
      mqttId: source.id,
    });
  }

  /**
   * An MQTT message whose payload did not parse in its source's format: it enters no workflow.
   * It is published as `MqttPayloadRejected` (id fixed by the message id, so a redelivery is
   * one entry), which the rejected-payload consumer parks in the dead-letter queue at once with
   * the parse error.
   */
  async rejectMqtt(source: MqttRow, m: { topic: string; messageId: string; reason: string; base64: string }): Promise<void> {
    await this.o.publish([
      {
        ...eventOf(
          MqttPayloadRejectedSchema,
          {
            tenantId: source.tenantId,
            sourceId: source.id,
            messageId: m.messageId,
            topic: m.topic,
            format: source.format,
            reason: m.reason,
            payloadBase64: m.base64,
          },
          { metadata: { tenantId: source.tenantId, actor: `mqtt:${source.id}` } },
        ),
        eventId: messageEventId(`mqtt:${source.id}`, m.messageId),
        streamId: `integration_mqtt-${source.id}`,
      },
    ]);
  }

  /** The rejected-payload consumer: parks the message in the dead-letter queue with its parse error. */
  async handleRejectedPayload(event: DeliveredEvent): Promise<void> {
    const r = payloadOf(MqttPayloadRejectedSchema, event);
    throw new PermanentFailure(`MQTT source ${r.sourceId}, topic ${r.topic}: ${r.reason}`);
  }

  private accept(
    tenantId: string,
    source: string,
    data: Record<string, unknown>,
    clientMessageId: string,
    actor: string,
    feed: Feed,
  ): Promise<Accepted> {
    return this.accepts.submit({ tenantId, source, dedupeKey: dedupeKeyOf(data, clientMessageId), data, actor, feed });
  }

  /** Waits for ingress's background bookkeeping (shutdown). */
  settled(): Promise<void> {
    return this.accepts.settled();
  }

  // ---- destinations ----

  /** Checks a destination configuration and seals its secret. */
  private async prepareDestination(a: Actor, config: DestinationConfig) {
    const kind = kindOf(config);
    const { config: clear, secret } = splitSecret(config);
    if (config.kind.case === "sql") {
      const c = config.kind.value;
      const problems = (await this.o.connectors()).validateSqlConnection({
        engine: c.engine === SqlEngine.MYSQL ? "mysql" : "postgres",
        host: c.host,
        port: c.port,
        database: c.database,
        user: c.user,
        ...(c.poolMax ? { poolMax: c.poolMax } : {}),
      });
      if (problems.length > 0) throw invalid("config.sql", problems.join("; "));
    }
    const sealed = secret ? await this.o.keyring.sealText({ tenantId: a.tenantId, purpose: PURPOSE.destination }, secret) : null;
    return { kind, clear, sealed };
  }

  async createDestination(a: Actor, name: string, config: DestinationConfig): Promise<DestinationRow> {
    const { kind, clear, sealed } = await this.prepareDestination(a, config);
    const row: DestinationRow = {
      id: newId(),
      tenantId: a.tenantId,
      name,
      kind,
      config: clear,
      sealedSecret: sealed,
      kubernetesResource: markerForCreate(a),
      createdAt: this.o.clock(),
    };
    try {
      await this.o.db.transaction(async (tx) => {
        await store.insertDestination(tx, row);
        await recordFacts(
          tx,
          `integration_destination-${row.id}`,
          [eventOf(DestinationChangedSchema, { tenantId: a.tenantId, destinationId: row.id, change: "created", name, kind })],
          this.meta(a),
        );
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw taken("destination", name);
      throw err;
    }
    return row;
  }

  async getDestination(tenantId: string, id: string): Promise<DestinationRow> {
    const row = await store.destination(this.o.db, tenantId, id);
    if (!row) throw notFound("destination", id);
    return row;
  }

  listDestinations(tenantId: string) {
    return store.destinations(this.o.db, tenantId);
  }

  /**
   * Replaces a destination's name and configuration (secret included) in place, so the
   * workflows naming it keep working; its connection pool is reopened with the new settings.
   */
  async updateDestination(a: Actor, id: string, name: string, config: DestinationConfig): Promise<DestinationRow> {
    const { kind, clear, sealed } = await this.prepareDestination(a, config);
    let next: DestinationRow | undefined;
    try {
      next = await this.o.db.transaction(async (tx) => {
        const row = await store.destination(tx, a.tenantId, id, true);
        if (!row) throw notFound("destination", id);
        const kubernetesResource = markerForChange("destination", row, a);
        if (row.kind !== kind)
          throw domainError(
            "FAILED_PRECONDITION",
            `destination ${id} is a ${row.kind} destination: its kind cannot change to ${kind}; create another destination`,
            { destination_id: id },
          );
        const updated: DestinationRow = { ...row, name, config: clear, sealedSecret: sealed, kubernetesResource };
        await store.updateDestination(tx, updated);
        await recordFacts(
          tx,
          `integration_destination-${id}`,
          [eventOf(DestinationChangedSchema, { tenantId: a.tenantId, destinationId: id, change: "updated", name, kind })],
          this.meta(a),
        );
        return updated;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw taken("destination", name);
      throw err;
    }
    await this.o.drivers.forget(id);
    return next;
  }

  async deleteDestination(a: Actor, id: string): Promise<void> {
    await this.o.db.transaction(async (tx) => {
      const found = await store.destination(tx, a.tenantId, id, true);
      if (!found) throw notFound("destination", id);
      markerForChange("destination", found, a);
      const users = await store.workflowsUsing(tx, a.tenantId, id);
      if (users.length > 0)
        throw domainError("FAILED_PRECONDITION", `destination ${id} is used by workflow(s) ${users.join(", ")}: change them first`, {
          destination_id: id,
        });
      const row = await store.deleteDestination(tx, a.tenantId, id);
      if (!row) throw notFound("destination", id);
      await recordFacts(
        tx,
        `integration_destination-${id}`,
        [eventOf(DestinationChangedSchema, { tenantId: a.tenantId, destinationId: id, change: "deleted", name: row.name, kind: row.kind })],
        this.meta(a),
      );
    });
    await this.o.drivers.forget(id);
  }

  /**
   * A destination with its secret opened (for delivering and testing). Inside a transaction,
   * pass it as `q`: the keyring then reads its data key through that transaction instead of
   * waiting for a second connection (PGlite has one; a delivery's transaction holds it).
   */
  async openDestination(row: DestinationRow, q?: Queryable): Promise<DestinationRecord> {
    const keyring = (q && this.o.keyring.using?.(q)) || this.o.keyring;
    const secret = row.sealedSecret
      ? await keyring.openText({ tenantId: row.tenantId, purpose: PURPOSE.destination }, row.sealedSecret)
      : "";
    return { id: row.id, tenantId: row.tenantId, name: row.name, kind: row.kind, config: row.config, secret };
  }

  // ---- workflows ----

  private async checked(tenantId: string, def: WorkflowDefinition): Promise<void> {
    const dests = new Map<string, DestinationKind>((await store.destinations(this.o.db, tenantId)).map((d) => [d.id, { kind: d.kind }]));
    const needsMappings = def.targets.some((t) => t.sql) || def.steps.some((s) => s.target?.sql);
    const validateMappings = needsMappings ? (await this.o.connectors()).validateMappings : () => [];
    const problems = checkDefinition(def, dests, validateMappings);
    if (def.source?.appId && !(await store.app(this.o.db, tenantId, def.source.appId)))
      problems.push({ field: "definition.source.app_id", message: `no sender app ${def.source.appId} in this tenant` });
    if (def.source?.mqttSourceId && !(await store.mqttSource(this.o.db, tenantId, def.source.mqttSourceId)))
      problems.push({ field: "definition.source.mqtt_source_id", message: `no MQTT source ${def.source.mqttSourceId} in this tenant` });
    if (problems.length > 0) {
      const first = problems[0] as { field: string; message: string };
      throw domainError(
        "INVALID_ARGUMENT",
        `${first.field}: ${first.message}${
          problems.length > 1
            ? ` (and ${problems.length - 1} more problem(s): ${problems
                .slice(1)
                .map((p) => p.field)
                .join(", ")})`
            : ""
        }`,
        { field: first.field },
      );
    }
  }

  private rowFields(def: WorkflowDefinition) {
    return {
      kind: def.kind === WorkflowKind.SEQUENTIAL ? "sequential" : "fan_out",
      sourceAppId: def.source?.appId || null,
      sourceMqttId: def.source?.mqttSourceId || null,
      retentionHours: def.retentionHours || DEFAULT_RETENTION_HOURS,
    };
  }

  async createWorkflow(a: Actor, name: string, def: WorkflowDefinition): Promise<WorkflowRow> {
    await this.checked(a.tenantId, def);
    const key = { tenantId: a.tenantId, workflowId: newId() };
    let row: WorkflowRow | undefined;
    try {
      row = (
        await executeCommand(
          this.o.db,
          workflowAggregate,
          key,
          {
            type: "Create",
            name,
            fields: this.rowFields(def),
            definition: toJson(WorkflowDefinitionSchema, def),
            by: a.actor,
            at: this.o.clock(),
            marker: a,
          },
          this.meta(a),
        )
      ).state;
    } catch (err) {
      if (isUniqueViolation(err)) throw taken("workflow", name);
      throw err;
    }
    this.o.onWorkflowsChanged?.();
    return row as WorkflowRow;
  }

  async getWorkflow(tenantId: string, id: string): Promise<WorkflowRow> {
    const row = await store.workflow(this.o.db, tenantId, id);
    if (!row) throw notFound("workflow", id);
    return row;
  }

  listWorkflows(tenantId: string) {
    return store.workflows(this.o.db, tenantId);
  }

  /** A version's definition (0: current). */
  async definition(row: WorkflowRow, version: number): Promise<{ version: number; definition: WorkflowDefinition }> {
    const v = version || row.currentVersion;
    const found = await store.version(this.o.db, row.id, v);
    if (!found) throw domainError("NOT_FOUND", `workflow ${row.id} has no version ${v}`, { version: v });
    return { version: v, definition: fromJson(WorkflowDefinitionSchema, found.definition, { ignoreUnknownFields: true }) };
  }

  async versions(tenantId: string, id: string) {
    const row = await this.getWorkflow(tenantId, id);
    return (await store.versions(this.o.db, row.id)).map((v) => ({
      ...v,
      definition: fromJson(WorkflowDefinitionSchema, v.definition, { ignoreUnknownFields: true }),
    }));
  }

  private async newVersion(
    a: Actor,
    id: string,
    change: "updated" | "rolled_back",
    def: () => Promise<WorkflowDefinition>,
    expected = 0,
  ): Promise<WorkflowRow> {
    const d = await def();
    await this.checked(a.tenantId, d);
    const { state } = await executeCommand(
      this.o.db,
      workflowAggregate,
      { tenantId: a.tenantId, workflowId: id },
      {
        type: "SaveVersion",
        marker: a,
        change,
        fields: this.rowFields(d),
        definition: toJson(WorkflowDefinitionSchema, d),
        by: a.actor,
        expectedVersion: expected,
      },
      this.meta(a),
    );
    return state as WorkflowRow;
  }

  updateWorkflow(a: Actor, id: string, def: WorkflowDefinition, expectedVersion: number) {
    return this.newVersion(a, id, "updated", async () => def, expectedVersion);
  }

  async rollbackWorkflow(a: Actor, id: string, version: number) {
    const row = await this.getWorkflow(a.tenantId, id);
    if (version >= row.currentVersion) throw invalid("version", `roll back to an earlier version than the current ${row.currentVersion}`);
    return this.newVersion(a, id, "rolled_back", async () => (await this.definition(row, version)).definition);
  }

  /**
   * Pauses (`enabled` false) or resumes a workflow. A paused workflow's messages are still
   * accepted and wait on its subject (its durable consumer stays); every replica stops or
   * starts handling them at its next reconcile (at once in this process).
   */
  async setWorkflowEnabled(a: Actor, id: string, enabled: boolean): Promise<WorkflowRow> {
    const { state } = await executeCommand(
      this.o.db,
      workflowAggregate,
      { tenantId: a.tenantId, workflowId: id },
      enabled ? { type: "Resume" } : { type: "Pause", by: "" },
      this.meta(a),
    );
    this.o.onWorkflowsChanged?.();
    return state as WorkflowRow;
  }

  async deleteWorkflow(a: Actor, id: string): Promise<void> {
    await executeCommand(
      this.o.db,
      workflowAggregate,
      { tenantId: a.tenantId, workflowId: id },
      { type: "Delete", marker: a },
      this.meta(a),
    );
    this.o.onWorkflowsChanged?.();
  }

  // ---- MQTT sources ----

  async createMqtt(
    a: Actor,
    input: Omit<MqttRow, "id" | "tenantId" | "sealedPassword" | "createdAt"> & { password: string },
  ): Promise<MqttRow> {
    const { password, ...rest } = input;
    const problems = (await this.o.connectors()).validateMqttSourceConfig({
      url: input.url,
      ...(input.username ? { username: input.username } : {}),
      ...(password ? { password } : {}),
      clientId: "nexus-check",
      topics: input.topics,
      qos: input.qos,
      format: input.format,
    });
    if (problems.length > 0) throw invalid("source", problems.join("; "));
    const sealed = password ? await this.o.keyring.sealText({ tenantId: a.tenantId, purpose: PURPOSE.mqtt }, password) : null;
    const row: MqttRow = { ...rest, id: newId(), tenantId: a.tenantId, sealedPassword: sealed, createdAt: this.o.clock() };
    try {
      await this.o.db.transaction(async (tx) => {
        await store.insertMqtt(tx, row);
        await recordFacts(
          tx,
          `integration_mqtt-${row.id}`,
          [eventOf(MqttSourceChangedSchema, { tenantId: a.tenantId, sourceId: row.id, change: "created", name: row.name })],
          this.meta(a),
        );
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw taken("MQTT source", input.name);
      throw err;
    }
    this.o.onMqttChanged?.();
    return row;
  }

  async getMqtt(tenantId: string, id: string): Promise<MqttRow> {
    const row = await store.mqttSource(this.o.db, tenantId, id);
    if (!row) throw notFound("MQTT source", id);
    return row;
  }

  listMqtt(tenantId: string) {
    return store.mqttSources(this.o.db, tenantId);
  }

  async deleteMqtt(a: Actor, id: string): Promise<void> {
    await this.o.db.transaction(async (tx) => {
      const row = await store.deleteMqtt(tx, a.tenantId, id);
      if (!row) throw notFound("MQTT source", id);
      await recordFacts(
        tx,
        `integration_mqtt-${id}`,
        [eventOf(MqttSourceChangedSchema, { tenantId: a.tenantId, sourceId: id, change: "deleted", name: row.name })],
        this.meta(a),
      );
    });
    this.o.onMqttChanged?.();
  }

  /** The MQTT password opened. */
  mqttPassword(row: MqttRow): Promise<string> {
    return row.sealedPassword
      ? this.o.keyring.openText({ tenantId: row.tenantId, purpose: PURPOSE.mqtt }, row.sealedPassword)
      : Promise.resolve("");
  }

  // ---- the runner ----

  /** Parsed definitions by workflow and version (a saved version never changes). */
  private readonly definitions = new Map<string, WorkflowDefinition>();

  /**
   * A stored version's definition, parsed once per process: the runner still reads the
   * version row (a deleted workflow has none), but not the proto JSON again for every message.
   */
  private parsed(workflowId: string, version: number, json: JsonValue): WorkflowDefinition {
    const key = `${workflowId}:${version}`;
    let def = this.definitions.get(key);
    if (!def) {
      def = fromJson(WorkflowDefinitionSchema, json, { ignoreUnknownFields: true });
      if (this.definitions.size >= 1_000) this.definitions.delete(this.definitions.keys().next().value as string);
      this.definitions.set(key, def);
    }
    return def;
  }

  private async record(
    q: Tx | Database,
    e: { tenantId: string; messageId: string; workflowId: string; version: number; target: string; destinationId?: string; step?: string },
    status: string,
    attempts: number,
    latencyMs: number,
    error = "",
    detail: Record<string, JsonValue> | null = null,
  ) {
    await store.recordExecution(q, {
      id: randomUUID(),
      tenantId: e.tenantId,
      messageId: e.messageId,
      workflowId: e.workflowId,
      workflowVersion: e.version,
      target: e.target,
      destinationId: e.destinationId ?? "",
      step: e.step ?? "",
      status,
      attempts,
      latencyMs,
      error,
      detail,
      at: this.o.clock(),
    });
  }

  /**
   * A workflow's consumer: a fan-out message becomes one delivery per target (each its own
   * event with its own retries); a sequential message runs its steps here. Runs in the
   * consumer's transaction: the expansion and the processed-event record commit together.
   */
  async handleWorkflowMessage(event: DeliveredEvent, tx: Tx): Promise<void> {
    const m = payloadOf(WorkflowMessageAcceptedSchema, event);
    const wf = await store.workflowById(tx, m.workflowId);
    if (!wf) return; // deleted: its queued messages are dropped
    const found = await store.version(tx, wf.id, m.workflowVersion);
    if (!found) return;
    const def = this.parsed(wf.id, m.workflowVersion, found.definition);
    const base = { tenantId: m.tenantId, messageId: m.messageId, workflowId: wf.id, version: m.workflowVersion };
    if (def.kind === WorkflowKind.FAN_OUT) {
      // The pending entries first (a delivery that runs before this transaction commits waits
      // for them, then advances them), then the deliveries straight to the bus: their ids are
      // fixed per message and target, so the publish a redelivery of this message repeats is
      // dropped by the bus or skipped by the delivery consumer.
      for (const [i, t] of def.targets.entries())
        await this.record(tx, { ...base, target: `t${i}`, destinationId: t.destinationId }, "pending", 0, 0);
      const events = def.targets.map((t, i) => ({
        ...eventOf(DeliveryRequestedSchema, {
          tenantId: m.tenantId,
          messageId: m.messageId,
          workflowId: wf.id,
          workflowVersion: m.workflowVersion,
          targetIndex: i,
          destinationId: t.destinationId,
          ...(m.payload !== undefined ? { payload: m.payload } : {}),
        }),
        eventId: messageEventId(m.messageId, `${wf.id}/t${i}`),
        streamId: `integration_message-${m.messageId}`,
      }));
      await this.o.publish(events, { metadata: event.metadata, tx });
      return;
    }
    await this.runSequential(tx, def, base, (m.payload ?? {}) as JsonValue);
  }

  /** The key of a delivery's execution entry. */
  private deliveryKey(d: {
    tenantId: string;
    messageId: string;
    workflowId: string;
    workflowVersion: number;
    targetIndex: number;
    destinationId: string;
  }) {
    return {
      tenantId: d.tenantId,
      messageId: d.messageId,
      workflowId: d.workflowId,
      version: d.workflowVersion,
      target: `t${d.targetIndex}`,
      destinationId: d.destinationId,
    };
  }

  /**
   * One fan-out delivery. A failure retrying may fix throws (the bus retries with backoff and
   * jitter) until the destination's max retries are used up; then, or at once for a failure
   * retrying cannot fix (a refusal, a constraint violation, a mapping that does not fit), it
   * throws {@link PermanentFailure}: the bus parks the delivery in the dead-letter queue, and
   * {@link deliveryDeadLettered} logs it.
   */
  async handleDelivery(event: DeliveredEvent, tx: Tx): Promise<void> {
    const d = payloadOf(DeliveryRequestedSchema, event);
    const key = this.deliveryKey(d);
    const found = await store.version(tx, d.workflowId, d.workflowVersion);
    const target = found ? this.parsed(d.workflowId, d.workflowVersion, found.definition).targets[d.targetIndex] : undefined;
    if (!target) return; // workflow deleted
    const destRow = await store.destination(tx, d.tenantId, d.destinationId);
    if (!destRow) throw new PermanentFailure(`destination ${d.destinationId} no longer exists`);
    const ownRetries = (destRow.config as { maxRetries?: number } | null)?.maxRetries;
    const maxDeliveries = ownRetries === undefined ? this.o.maxDeliveries : ownRetries + 1;
    // Deliveries that ended without an outcome (the process died each time) count too.
    if (event.deliveryCount > maxDeliveries)
      throw new PermanentFailure(`delivered ${event.deliveryCount - 1} times without success (at most ${maxDeliveries})`);
    const input = d.payload ?? null;
    const bindings = { messageId: d.messageId, workflowId: d.workflowId };
    if (target.condition && !(await evaluate(target.condition, input, bindings).catch(() => false))) {
      await this.record(tx, key, "skipped", event.deliveryCount, 0, "condition false");
      return;
    }
    const started = performance.now();
    try {
      const dest = await this.openDestination(destRow, tx);
      const r = await this.o.drivers.deliver(dest, target, input, { idempotencyKey: `${d.messageId}-${d.targetIndex}`, bindings });
      await this.record(tx, key, "succeeded", event.deliveryCount, Math.round(performance.now() - started), "", r.detail);
    } catch (err) {
      const latency = Math.round(performance.now() - started);
      const ce = err instanceof ConnectorError ? err : undefined;
      const message = ce ? `${ce.reason}: ${ce.message}` : (err as Error).message;
      if (ce && !ce.retryable) throw new PermanentFailure(message);
      if (event.deliveryCount >= maxDeliveries) throw new PermanentFailure(`${message} (after ${event.deliveryCount} attempts)`);
      // Outside the consumer's transaction (it rolls back when we throw), best effort: the
      // embedded database has one connection and refuses this, the bus still retries.
      await this.record(this.o.db, key, "retrying", event.deliveryCount, latency, message).catch(() => undefined);
      throw err;
    }
  }

  /** A delivery the bus parked in the dead-letter queue: its execution entry says so, with the error. */
  async deliveryDeadLettered(event: DeliveredEvent, error: string): Promise<void> {
    const d = payloadOf(DeliveryRequestedSchema, event);
    await this.record(this.o.db, this.deliveryKey(d), "dead_lettered", event.deliveryCount, 0, error);
  }

  private async runSequential(
    tx: Tx,
    def: WorkflowDefinition,
    base: { tenantId: string; messageId: string; workflowId: string; version: number },
    input: JsonValue,
  ): Promise<void> {
    const steps = def.steps;
    const index = new Map(steps.map((s, i) => [s.name, i]));
    let data: unknown = input;
    const bindings = { messageId: base.messageId, workflowId: base.workflowId };
    let i = 0;
    for (let guard = 0; i >= 0 && i < steps.length && guard < 1_000; guard++) {
      const step = steps[i] as (typeof steps)[number];
      const key = {
        ...base,
        target: `s:${step.name}`,
        step: step.name,
        ...(step.target ? { destinationId: step.target.destinationId } : {}),
      };
      const tries = step.onError === OnError.RETRY ? (step.maxRetries || 3) + 1 : 1;
      let next = step.nextStep === "end" ? -1 : step.nextStep ? (index.get(step.nextStep) ?? -1) : i + 1;
      let attempt = 0;
      let outcome: { ok: true; detail: Record<string, JsonValue> } | { ok: false; error: string } = { ok: false, error: "" };
      const started = performance.now();
      while (attempt < tries) {
        attempt++;
        try {
          switch (step.type) {
            case StepType.REST_CALL:
            case StepType.DB_QUERY: {
              const target = step.target;
              const row = target ? await store.destination(tx, base.tenantId, target.destinationId) : undefined;
              if (!target || !row) throw new ConnectorError("INVALID_DESTINATION_CONFIG", "the step's destination no longer exists");
              const r = await this.o.drivers.deliver(await this.openDestination(row, tx), target, data, {
                idempotencyKey: `${base.messageId}-${step.name}`,
                bindings,
              });
              if (data && typeof data === "object" && !Array.isArray(data) && r.output !== undefined)
                data = { ...(data as object), [step.name]: r.output };
              outcome = { ok: true, detail: r.detail };
              break;
            }
            case StepType.TRANSFORM:
              data = await evaluate(step.expression, data, bindings);
              outcome = { ok: true, detail: {} };
              break;
            case StepType.CONDITION: {
              const value = Boolean(await evaluate(step.expression, data, bindings));
              next = value
                ? step.thenStep
                  ? (index.get(step.thenStep) ?? -1)
                  : i + 1
                : step.elseStep && step.elseStep !== "end"
                  ? (index.get(step.elseStep) ?? -1)
                  : -1;
              outcome = { ok: true, detail: { result: value } };
              break;
            }
            case StepType.DELAY:
              await new Promise((r) => setTimeout(r, step.delayMs));
              outcome = { ok: true, detail: { delayedMs: step.delayMs } };
              break;
            case StepType.UNSPECIFIED:
              throw new ConnectorError("INVALID_DESTINATION_CONFIG", "step without type");
            default: {
              const _exhaustive: never = step.type;
              return _exhaustive;
            }
          }
          break;
        } catch (err) {
          const ce = err instanceof ConnectorError ? err : undefined;
          if (!ce && !(err instanceof Error && err.name === "TimeoutError")) throw err; // not the step's fault: the bus retries the message
          outcome = { ok: false, error: `${ce?.reason ?? "TIMEOUT"}: ${(err as Error).message}` };
          if (ce && !ce.retryable) break; // a refusal, a constraint violation, a mapping that does not fit: retrying cannot fix it
          if (attempt < tries)
            await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { initialMs: 200, maxMs: 5_000, jitter: true })));
        }
      }
      const latency = Math.round(performance.now() - started);
      if (outcome.ok) {
        await this.record(tx, key, "succeeded", attempt, latency, "", outcome.detail);
      } else if (step.onError === OnError.SKIP) {
        await this.record(tx, key, "skipped", attempt, latency, outcome.error);
      } else {
        await this.record(tx, key, "failed", attempt, latency, outcome.error);
        return;
      }
      i = next;
    }
  }
}

/** Creates an empty proto definition (tests). */
export const emptyDefinition = () => create(WorkflowDefinitionSchema, {});
