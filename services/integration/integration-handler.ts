import type { JsonObject } from "@bufbuild/protobuf";
import { fromJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { IntegrationService } from "../../gen/nexus/integration/v1/integration_service_pb.js";
import {
  type DestinationConfig,
  DestinationConfigSchema,
  type ExecutionStatus,
  type FieldSpec,
  type PayloadFormat,
  type WorkflowDefinition,
} from "../../gen/nexus/integration/v1/resources_pb.js";
import { principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { DeadLetterStore } from "../kernel/events/ports.js";
import { keysetPosition, pageTokens } from "../kernel/paging/index.js";
import { type DestinationDrivers, kindOf } from "./adapters/destination-drivers.js";
import { store } from "./adapters/postgres.js";
import { type Actor, type IntegrationApplication, workflowTopic } from "./integration-application.js";
import type { MqttRunner } from "./mqtt-sources.js";
import {
  appToProto,
  destinationToProto,
  executionToProto,
  fieldsFromProto,
  formatFromProto,
  mqttToProto,
  statusFromProto,
  workflowToProto,
} from "./proto-mapping.js";

/** Durable consumer name of fan-out deliveries (its dead letters are this service's). */
export const DELIVERY_CONSUMER = "integration-deliveries";
/** The consumer that parks MQTT payloads which did not parse. */
export const REJECTED_PAYLOAD_CONSUMER = "integration-rejected-payloads";

const executionPages = pageTokens(keysetPosition("at", "id"));

/** Dependencies of {@link IntegrationHandler}. */
export interface IntegrationHandlerDeps {
  app: IntegrationApplication;
  db: Database;
  drivers: DestinationDrivers;
  deadLetters: DeadLetterStore;
  mqtt: MqttRunner;
  subjectPrefix: string;
  /** Poll interval of TailExecutions. Default 500 ms. */
  tailIntervalMs?: number;
}

function actorOf(ctx: HandlerContext, requested: string, kubernetesResource = ""): Actor {
  const principal = principalOf(ctx);
  return {
    tenantId: tenantScope(principal, requested),
    actor: principal.keyId,
    platform: principal.kind === "platform",
    kubernetesResource,
  };
}

/** nexus.integration.v1.IntegrationService. */
export class IntegrationHandler implements ServiceImpl<typeof IntegrationService> {
  constructor(private readonly d: IntegrationHandlerDeps) {}

  private subject(workflowId: string) {
    return `${this.d.subjectPrefix}.${workflowTopic(workflowId)}`;
  }

  async createSenderApp(
    req: { tenantId: string; name: string; fields: FieldSpec[]; encryptionRequired: boolean; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    const a = actorOf(ctx, req.tenantId, req.kubernetesResource);
    const r = await this.d.app.createApp(a, {
      name: req.name,
      fields: fieldsFromProto(req.fields),
      encryptionRequired: req.encryptionRequired,
    });
    return { app: appToProto(r.app), appKey: r.appKey, masterSecret: r.masterSecret };
  }
  async getSenderApp(req: { tenantId: string; appId: string }, ctx: HandlerContext) {
    return { app: appToProto(await this.d.app.getApp(actorOf(ctx, req.tenantId).tenantId, req.appId)) };
  }
  async listSenderApps(req: { tenantId: string }, ctx: HandlerContext) {
    return { apps: (await this.d.app.listApps(actorOf(ctx, req.tenantId).tenantId)).map(appToProto) };
  }
  async updateSenderApp(
    req: { tenantId: string; appId: string; name: string; fields: FieldSpec[]; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    const r = await this.d.app.updateApp(actorOf(ctx, req.tenantId, req.kubernetesResource), req.appId, {
      name: req.name,
      fields: fieldsFromProto(req.fields),
    });
    return { app: appToProto(r) };
  }
  async deleteSenderApp(req: { tenantId: string; appId: string; kubernetesResource: string }, ctx: HandlerContext) {
    await this.d.app.deleteApp(actorOf(ctx, req.tenantId, req.kubernetesResource), req.appId);
    return {};
  }
  async rotateAppKey(req: { tenantId: string; appId: string; kubernetesResource: string }, ctx: HandlerContext) {
    return { appKey: await this.d.app.rotateAppKey(actorOf(ctx, req.tenantId, req.kubernetesResource), req.appId) };
  }
  async rotateMasterSecret(
    req: { tenantId: string; appId: string; retireBefore: number; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    const r = await this.d.app.rotateMasterSecret(actorOf(ctx, req.tenantId, req.kubernetesResource), req.appId, req.retireBefore);
    return { keyVersion: r.version, masterSecret: r.secret };
  }
  async ingest(req: { tenantId: string; appId: string; payload?: JsonObject; clientMessageId: string }, ctx: HandlerContext) {
    const a = actorOf(ctx, req.tenantId);
    const app = await this.d.app.getApp(a.tenantId, req.appId);
    return this.d.app.ingest(app, req.payload ?? {}, req.clientMessageId, a.actor);
  }
  async executeWorkflow(req: { tenantId: string; workflowId: string; payload?: JsonObject; clientMessageId: string }, ctx: HandlerContext) {
    const a = actorOf(ctx, req.tenantId);
    const r = await this.d.app.execute(a.tenantId, req.workflowId, req.payload ?? {}, req.clientMessageId, a.actor);
    return { messageId: r.messageId, duplicate: r.duplicate };
  }

  async createDestination(
    req: { tenantId: string; name: string; config?: DestinationConfig | undefined; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    if (!req.config) throw domainError("INVALID_ARGUMENT", "config is required", { field: "config" });
    const a = actorOf(ctx, req.tenantId, req.kubernetesResource);
    return { destination: destinationToProto(await this.d.app.createDestination(a, req.name, req.config)) };
  }
  async updateDestination(
    req: { tenantId: string; destinationId: string; name: string; config?: DestinationConfig | undefined; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    if (!req.config) throw domainError("INVALID_ARGUMENT", "config is required", { field: "config" });
    const a = actorOf(ctx, req.tenantId, req.kubernetesResource);
    return { destination: destinationToProto(await this.d.app.updateDestination(a, req.destinationId, req.name, req.config)) };
  }
  async getDestination(req: { tenantId: string; destinationId: string }, ctx: HandlerContext) {
    return { destination: destinationToProto(await this.d.app.getDestination(actorOf(ctx, req.tenantId).tenantId, req.destinationId)) };
  }
  async listDestinations(req: { tenantId: string }, ctx: HandlerContext) {
    return { destinations: (await this.d.app.listDestinations(actorOf(ctx, req.tenantId).tenantId)).map(destinationToProto) };
  }
  async deleteDestination(req: { tenantId: string; destinationId: string; kubernetesResource: string }, ctx: HandlerContext) {
    await this.d.app.deleteDestination(actorOf(ctx, req.tenantId, req.kubernetesResource), req.destinationId);
    return {};
  }
  async testDestination(req: { tenantId: string; destinationId: string; config?: DestinationConfig }, ctx: HandlerContext) {
    const tenantId = actorOf(ctx, req.tenantId).tenantId;
    if (req.destinationId) {
      const row = await this.d.app.getDestination(tenantId, req.destinationId);
      const dest = await this.d.app.openDestination(row);
      return this.d.drivers.test(
        dest.kind,
        fromJson(DestinationConfigSchema, dest.config, { ignoreUnknownFields: true }),
        dest.secret,
        ctx.signal,
      );
    }
    if (!req.config?.kind.case) throw domainError("INVALID_ARGUMENT", "set destination_id or config", { field: "config" });
    const c = req.config;
    const secret =
      c.kind.case === "rest"
        ? c.kind.value.secret
        : c.kind.case === "sql"
          ? c.kind.value.password
          : c.kind.case === "corpus"
            ? c.kind.value.apiKey
            : "";
    return this.d.drivers.test(kindOf(c), c, secret, ctx.signal);
  }
  private async sqlDestination(tenantId: string, id: string) {
    const row = await this.d.app.getDestination(tenantId, id);
    if (row.kind !== "sql")
      throw domainError("FAILED_PRECONDITION", `destination ${id} is a ${row.kind} destination, not a database`, { destination_id: id });
    return this.d.app.openDestination(row);
  }
  private async browse<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const e = err as { reason?: string; retryable?: boolean; message?: string };
      if (e.reason === "DESTINATION_UNAVAILABLE")
        throw domainError("DEPENDENCY_UNAVAILABLE", `the database did not answer: ${e.message}`, {}, { cause: err, retryAfterMs: 5_000 });
      if (e.reason) throw domainError("FAILED_PRECONDITION", `the database refused: ${e.message}`, { reason: e.reason }, { cause: err });
      throw err;
    }
  }
  async listDestinationTables(req: { tenantId: string; destinationId: string }, ctx: HandlerContext) {
    const dest = await this.sqlDestination(actorOf(ctx, req.tenantId).tenantId, req.destinationId);
    return { tables: await this.browse(() => this.d.drivers.listTables(dest)) };
  }
  async listDestinationColumns(req: { tenantId: string; destinationId: string; table: string }, ctx: HandlerContext) {
    const dest = await this.sqlDestination(actorOf(ctx, req.tenantId).tenantId, req.destinationId);
    return { columns: await this.browse(() => this.d.drivers.listColumns(dest, req.table)) };
  }

  async createWorkflow(
    req: { tenantId: string; name: string; definition?: WorkflowDefinition | undefined; kubernetesResource: string },
    ctx: HandlerContext,
  ) {
    const def = req.definition;
    if (!def) throw domainError("INVALID_ARGUMENT", "definition is required", { field: "definition" });
    const row = await this.d.app.createWorkflow(actorOf(ctx, req.tenantId, req.kubernetesResource), req.name, def);
    return { workflow: workflowToProto(row, 1, def, this.subject(row.id)) };
  }
  async getWorkflow(req: { tenantId: string; workflowId: string; version: number }, ctx: HandlerContext) {
    const row = await this.d.app.getWorkflow(actorOf(ctx, req.tenantId).tenantId, req.workflowId);
    const v = await this.d.app.definition(row, req.version);
    return { workflow: workflowToProto(row, v.version, v.definition, this.subject(row.id)) };
  }
  async listWorkflows(req: { tenantId: string }, ctx: HandlerContext) {
    const rows = await this.d.app.listWorkflows(actorOf(ctx, req.tenantId).tenantId);
    const out = [];
    for (const row of rows) {
      const v = await this.d.app.definition(row, 0);
      out.push(workflowToProto(row, v.version, v.definition, this.subject(row.id)));
    }
    return { workflows: out };
  }
  async updateWorkflow(
    req: {
      tenantId: string;
      workflowId: string;
      definition?: WorkflowDefinition | undefined;
      expectedVersion: number;
      kubernetesResource: string;
    },
    ctx: HandlerContext,
  ) {
    const def = req.definition;
    if (!def) throw domainError("INVALID_ARGUMENT", "definition is required", { field: "definition" });
    const a = actorOf(ctx, req.tenantId, req.kubernetesResource);
    const row = await this.d.app.updateWorkflow(a, req.workflowId, def, req.expectedVersion);
    return { workflow: workflowToProto(row, row.currentVersion, def, this.subject(row.id)) };
  }
  async rollbackWorkflow(req: { tenantId: string; workflowId: string; version: number; kubernetesResource: string }, ctx: HandlerContext) {
    const row = await this.d.app.rollbackWorkflow(actorOf(ctx, req.tenantId, req.kubernetesResource), req.workflowId, req.version);
    const v = await this.d.app.definition(row, 0);
    return { workflow: workflowToProto(row, v.version, v.definition, this.subject(row.id)) };
  }
  async listWorkflowVersions(req: { tenantId: string; workflowId: string }, ctx: HandlerContext) {
    const versions = await this.d.app.versions(actorOf(ctx, req.tenantId).tenantId, req.workflowId);
    return {
      versions: versions.map((v) => ({
        version: v.version,
        definition: v.definition,
        createTime: timestampFromDate(v.createdAt),
        createdBy: v.createdBy,
      })),
    };
  }
  async disableWorkflow(req: { tenantId: string; workflowId: string }, ctx: HandlerContext) {
    return this.setEnabled(req, ctx, false);
  }
  async enableWorkflow(req: { tenantId: string; workflowId: string }, ctx: HandlerContext) {
    return this.setEnabled(req, ctx, true);
  }
  private async setEnabled(req: { tenantId: string; workflowId: string }, ctx: HandlerContext, enabled: boolean) {
    const row = await this.d.app.setWorkflowEnabled(actorOf(ctx, req.tenantId), req.workflowId, enabled);
    const v = await this.d.app.definition(row, 0);
    return { workflow: workflowToProto(row, v.version, v.definition, this.subject(row.id)) };
  }
  async deleteWorkflow(req: { tenantId: string; workflowId: string; kubernetesResource: string }, ctx: HandlerContext) {
    await this.d.app.deleteWorkflow(actorOf(ctx, req.tenantId, req.kubernetesResource), req.workflowId);
    return {};
  }

  async createMqttSource(
    req: {
      tenantId: string;
      name: string;
      url: string;
      username: string;
      password: string;
      topics: string[];
      qos: number;
      format: PayloadFormat;
    },
    ctx: HandlerContext,
  ) {
    const a = actorOf(ctx, req.tenantId);
    if (!/^(mqtt|mqtts|ws|wss):\/\/[^/\s]+/.test(req.url))
      throw domainError("INVALID_ARGUMENT", "url: must be an mqtt://, mqtts://, ws:// or wss:// broker URL", { field: "url" });
    const row = await this.d.app.createMqtt(a, {
      name: req.name,
      url: req.url,
      username: req.username,
      password: req.password,
      topics: [...req.topics],
      qos: req.qos as 0 | 1 | 2,
      format: formatFromProto(req.format),
    });
    return { source: mqttToProto(row) };
  }
  async getMqttSource(req: { tenantId: string; sourceId: string }, ctx: HandlerContext) {
    const row = await this.d.app.getMqtt(actorOf(ctx, req.tenantId).tenantId, req.sourceId);
    return { source: mqttToProto(row, this.d.mqtt.status(row.id)) };
  }
  async listMqttSources(req: { tenantId: string }, ctx: HandlerContext) {
    return {
      sources: (await this.d.app.listMqtt(actorOf(ctx, req.tenantId).tenantId)).map((m) => mqttToProto(m, this.d.mqtt.status(m.id))),
    };
  }
  async deleteMqttSource(req: { tenantId: string; sourceId: string }, ctx: HandlerContext) {
    await this.d.app.deleteMqtt(actorOf(ctx, req.tenantId), req.sourceId);
    return {};
  }

  async listExecutions(
    req: {
      tenantId: string;
      workflowId: string;
      messageId: string;
      destinationId: string;
      status: ExecutionStatus;
      pageSize: number;
      pageToken: string;
    },
    ctx: HandlerContext,
  ) {
    const tenantId = actorOf(ctx, req.tenantId).tenantId;
    const status = statusFromProto(req.status);
    const query = { tenantId, w: req.workflowId, m: req.messageId, d: req.destinationId, status };
    const before = executionPages.decode(req.pageToken, query);
    const limit = req.pageSize || 100;
    const rows = await store.executions(this.d.db, {
      tenantId,
      limit: limit + 1,
      ...(req.workflowId ? { workflowId: req.workflowId } : {}),
      ...(req.messageId ? { messageId: req.messageId } : {}),
      ...(req.destinationId ? { destinationId: req.destinationId } : {}),
      ...(status ? { status } : {}),
      ...(before ? { before } : {}),
    });
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      executions: page.map(executionToProto),
      nextPageToken: rows.length > limit && last ? executionPages.encode({ at: last.updatedAt, id: last.id }, query) : "",
    };
  }

  async *tailExecutions(req: { tenantId: string; workflowId: string }, ctx: HandlerContext) {
    const tenantId = actorOf(ctx, req.tenantId).tenantId;
    let tick = await store.lastTick(this.d.db);
    const interval = this.d.tailIntervalMs ?? 500;
    while (!ctx.signal.aborted) {
      const rows = await store.executionsAfter(this.d.db, tenantId, tick, req.workflowId || undefined);
      for (const r of rows) {
        tick = r.tick; // rows come in tick order
        yield { execution: executionToProto(r) };
      }
      if (rows.length === 0)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, interval);
          ctx.signal.addEventListener(
            "abort",
            () => {
              clearTimeout(t);
              resolve();
            },
            { once: true },
          );
        });
    }
  }

  /** Integration's parked messages of one tenant: fan-out deliveries and rejected MQTT payloads, oldest first. */
  private async deadLettersOf(tenantId: string) {
    const [deliveries, rejected] = await Promise.all([
      this.d.deadLetters.list({ consumer: DELIVERY_CONSUMER, limit: 10_000 }),
      this.d.deadLetters.list({ consumer: REJECTED_PAYLOAD_CONSUMER, limit: 10_000 }),
    ]);
    return [...deliveries, ...rejected].filter((d) => d.metadata.tenantId === tenantId).sort((a, b) => a.seq - b.seq);
  }
  async listDeadLetters(req: { tenantId: string; pageSize: number }, ctx: HandlerContext) {
    const tenantId = actorOf(ctx, req.tenantId).tenantId;
    const mine = (await this.deadLettersOf(tenantId)).slice(0, req.pageSize || 100);
    return {
      deadLetters: mine.map((d) => {
        const p = d.payload as { messageId?: string; workflowId?: string; destinationId?: string; sourceId?: string };
        return {
          sequence: BigInt(d.seq),
          messageId: p.messageId ?? "",
          workflowId: p.workflowId ?? "",
          destinationId: p.destinationId ?? "",
          attempts: d.deliveryCount,
          error: d.error,
          deadLetteredAt: timestampFromDate(d.deadLetteredAt),
          mqttSourceId: d.consumer === REJECTED_PAYLOAD_CONSUMER ? (p.sourceId ?? "") : "",
        };
      }),
    };
  }
  async replayDeadLetter(req: { tenantId: string; sequence: bigint }, ctx: HandlerContext) {
    const tenantId = actorOf(ctx, req.tenantId).tenantId;
    const found = (await this.deadLettersOf(tenantId)).find((d) => BigInt(d.seq) === req.sequence);
    if (!found) throw domainError("NOT_FOUND", `no dead letter ${req.sequence} of this tenant`, { sequence: String(req.sequence) });
    await this.d.deadLetters.replay(found.seq);
    const p = found.payload as { messageId?: string; destinationId?: string };
    return { messageId: p.messageId ?? "", destinationId: p.destinationId ?? "" };
  }
}
