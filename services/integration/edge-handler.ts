import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { Logger } from "pino";
import { TenantResumedSchema, TenantSuspendedSchema } from "../../gen/nexus/events/v1/auth_events_pb.js";
import { EdgeAgentChangedSchema } from "../../gen/nexus/events/v1/integration_events_pb.js";
import {
  type EdgeAgent,
  EdgeAgentSchema,
  type EdgeService,
  type EdgeStatus,
  type ForwardedMessage,
} from "../../gen/nexus/integration/v1/edge_service_pb.js";
import { principalOf, tenantScope } from "../kernel/authz/tenant-scope.js";
import { recordFacts } from "../kernel/commands/index.js";
import type { Database, Tx } from "../kernel/db/ports.js";
import { domainError, errorReason } from "../kernel/errors.js";
import { type EventHandler, eventOf, payloadOf } from "../kernel/events/index.js";
import { type EdgeRow, type EdgeStatusRow, edgeStore } from "./adapters/edge-agents.js";
import { isUniqueViolation, store } from "./adapters/postgres.js";
import { appKeyDigest, EDGE_TOKEN_PREFIX, generateEdgeToken, newId } from "./domain/app-key.js";
import type { IntegrationApplication } from "./integration-application.js";

const BEARER = /^Bearer[ \t]+(\S+)[ \t]*$/i;

/** Dependencies of {@link EdgeHandler}. */
export interface EdgeHandlerDeps {
  db: Database;
  app: IntegrationApplication;
  clock: () => Date;
  logger: Logger;
}

function edgeToProto(e: EdgeRow): EdgeAgent {
  return create(EdgeAgentSchema, {
    edgeId: e.id,
    tenantId: e.tenantId,
    name: e.name,
    appIds: e.appIds,
    tokenPrefix: e.tokenPrefix,
    createTime: timestampFromDate(e.createdAt),
    ...(e.revokedAt ? { revokeTime: timestampFromDate(e.revokedAt) } : {}),
    ...(e.lastSeenAt ? { lastSeenTime: timestampFromDate(e.lastSeenAt) } : {}),
    ...(e.status
      ? {
          status: {
            queueDepth: BigInt(e.status.queueDepth),
            queueBytes: BigInt(e.status.queueBytes),
            oldestQueuedAgeSeconds: e.status.oldestQueuedAgeSeconds,
            forwardedTotal: BigInt(e.status.forwardedTotal),
            failedTotal: BigInt(e.status.failedTotal),
            ...(e.status.lastSyncAt ? { lastSyncTime: timestampFromDate(new Date(e.status.lastSyncAt)) } : {}),
          },
        }
      : {}),
  });
}

function statusRow(s: EdgeStatus): EdgeStatusRow {
  return {
    queueDepth: Number(s.queueDepth),
    queueBytes: Number(s.queueBytes),
    oldestQueuedAgeSeconds: s.oldestQueuedAgeSeconds,
    lastSyncAt: s.lastSyncTime ? timestampDate(s.lastSyncTime).toISOString() : null,
    forwardedTotal: Number(s.forwardedTotal),
    failedTotal: Number(s.failedTotal),
  };
}

/**
 * nexus.integration.v1.EdgeService (docs/edge.md). Tenant admins register edge agents, assign
 * them sender apps and revoke them (each change an audited EdgeAgentChanged event); the agents
 * call GetEdgeConfig (their assigned apps with the SHA-256 digests of the app keys, never a
 * key; they report their status with it) and ForwardMessages with their edge token, which this
 * handler checks itself on every call against the stored digest — so a revoked token is
 * refused by every replica at once, with no cache to expire.
 */
export class EdgeHandler implements ServiceImpl<typeof EdgeService> {
  constructor(private readonly d: EdgeHandlerDeps) {}

  /** The edge agent whose token the call carries (UNAUTHENTICATED EDGE_TOKEN_* otherwise). */
  private async edgeOf(ctx: HandlerContext): Promise<EdgeRow> {
    const token = BEARER.exec(ctx.requestHeader.get("authorization") ?? "")?.[1];
    if (!token?.startsWith(EDGE_TOKEN_PREFIX) || token.length > 256)
      throw domainError(
        "EDGE_TOKEN_INVALID",
        "this call is made by edge agents with their edge token: Authorization: Bearer nxe_<edge id>_<secret> (RegisterEdge returns it once)",
      );
    const edge = await edgeStore.byDigest(this.d.db, appKeyDigest(token));
    if (!edge) throw domainError("EDGE_TOKEN_INVALID", "the edge token is not valid (unknown or mistyped)");
    if (edge.tenantSuspended)
      throw domainError("TENANT_SUSPENDED", "the edge agent's tenant is suspended: its edge tokens stop working until it is resumed", {
        edge_id: edge.id,
      });
    if (edge.revokedAt)
      throw domainError(
        "EDGE_TOKEN_REVOKED",
        `edge agent ${edge.name} (${edge.id}) was revoked at ${edge.revokedAt.toISOString()}; register a new one with RegisterEdge`,
        { edge_id: edge.id },
      );
    return edge;
  }

  private actor(ctx: HandlerContext, requested: string) {
    const principal = principalOf(ctx);
    return { tenantId: tenantScope(principal, requested), actor: principal.keyId };
  }

  private async activeEdge(tx: Tx, tenantId: string, edgeId: string): Promise<EdgeRow> {
    const edge = await edgeStore.get(tx, tenantId, edgeId, true);
    if (!edge) throw domainError("NOT_FOUND", `no edge agent ${edgeId} in this tenant`, { edge_id: edgeId });
    return edge;
  }

  private async checkApps(tx: Tx, tenantId: string, appIds: string[]): Promise<void> {
    const found = await edgeStore.existingApps(tx, tenantId, appIds);
    const missing = appIds.filter((id) => !found.has(id));
    if (missing.length > 0)
      throw domainError("NOT_FOUND", `no sender app ${missing.join(", ")} in this tenant`, { app_id: missing[0] ?? "" });
  }

  private event(tx: Tx, a: { tenantId: string; actor: string }, e: EdgeRow, change: string, changed: string[]) {
    return recordFacts(
      tx,
      `integration_edge-${e.id}`,
      [
        eventOf(EdgeAgentChangedSchema, {
          tenantId: e.tenantId,
          edgeId: e.id,
          change,
          name: e.name,
          appIds: e.appIds,
          changedAppIds: changed,
        }),
      ],
      { metadata: { tenantId: a.tenantId, actor: a.actor } },
    );
  }

  // ---- called by edge agents (edge token) ----

  async getEdgeConfig(req: { status?: EdgeStatus }, ctx: HandlerContext) {
    const edge = await this.edgeOf(ctx);
    const now = this.d.clock();
    const apps = await edgeStore.assignedApps(this.d.db, edge.tenantId, edge.appIds);
    // The report is best effort: GetEdgeConfig reads, so it is served during a failover's
    // write freeze too, when this write may be refused.
    await edgeStore
      .seen(this.d.db, edge.id, now, req.status ? statusRow(req.status) : undefined)
      .catch((err: unknown) => this.d.logger.warn({ err, edgeId: edge.id }, "edge agent status not recorded"));
    return { apps, syncedAt: timestampFromDate(now), edgeId: edge.id, tenantId: edge.tenantId };
  }

  async forwardMessages(req: { appId: string; messages: ForwardedMessage[] }, ctx: HandlerContext) {
    const edge = await this.edgeOf(ctx);
    if (!edge.appIds.includes(req.appId))
      throw domainError(
        "EDGE_APP_NOT_ASSIGNED",
        `edge agent ${edge.name} (${edge.id}) may not send for sender app ${req.appId}: it is not assigned to it (AssignEdgeApps, \`nexus integration edges assign\`)`,
        { edge_id: edge.id, app_id: req.appId },
      );
    const app = await store.app(this.d.db, edge.tenantId, req.appId);
    if (!app) throw domainError("NOT_FOUND", `no sender app ${req.appId} in this tenant (deleted?)`, { app_id: req.appId });
    await edgeStore.seen(this.d.db, edge.id, this.d.clock());
    const outcomes = await this.d.app.ingestOrdered(
      app,
      req.messages.map((m) => ({ payload: (m.payload ?? {}) as JsonObject, clientMessageId: m.clientMessageId })),
      `edge:${edge.id}`,
    );
    return {
      results: outcomes.map((o, i) => {
        const clientMessageId = req.messages[i]?.clientMessageId ?? "";
        if (o instanceof ConnectError)
          return { clientMessageId, error: { code: Code[o.code], reason: errorReason(o) ?? "", message: o.rawMessage } };
        return { clientMessageId, messageId: o.messageId, duplicate: o.duplicate, workflows: o.workflows };
      }),
    };
  }

  // ---- management (tenant admins; viewers list) ----

  async registerEdge(req: { tenantId: string; name: string; appIds: string[] }, ctx: HandlerContext) {
    const a = this.actor(ctx, req.tenantId);
    const id = newId();
    const token = generateEdgeToken(id);
    try {
      const edge = await this.d.db.transaction(async (tx) => {
        await this.checkApps(tx, a.tenantId, req.appIds);
        const row = await edgeStore.insert(
          tx,
          { id, tenantId: a.tenantId, name: req.name, tokenPrefix: token.displayPrefix, appIds: req.appIds },
          token.digest,
        );
        await this.event(tx, a, row, "registered", req.appIds);
        return row;
      });
      return { edge: edgeToProto(edge), edgeToken: token.plaintext };
    } catch (err) {
      if (isUniqueViolation(err))
        throw domainError("ALREADY_EXISTS", `an edge agent named ${JSON.stringify(req.name)} already exists in this tenant`, {
          name: req.name,
        });
      throw err;
    }
  }

  async listEdges(req: { tenantId: string; includeRevoked: boolean }, ctx: HandlerContext) {
    const a = this.actor(ctx, req.tenantId);
    return { edges: (await edgeStore.list(this.d.db, a.tenantId, req.includeRevoked)).map(edgeToProto) };
  }

  async getEdge(req: { tenantId: string; edgeId: string }, ctx: HandlerContext) {
    const a = this.actor(ctx, req.tenantId);
    const edge = await edgeStore.get(this.d.db, a.tenantId, req.edgeId);
    if (!edge) throw domainError("NOT_FOUND", `no edge agent ${req.edgeId} in this tenant`, { edge_id: req.edgeId });
    return { edge: edgeToProto(edge) };
  }

  async revokeEdge(req: { tenantId: string; edgeId: string }, ctx: HandlerContext) {
    const a = this.actor(ctx, req.tenantId);
    const edge = await this.d.db.transaction(async (tx) => {
      const before = await this.activeEdge(tx, a.tenantId, req.edgeId);
      if (before.revokedAt) return before;
      const row = await edgeStore.revoke(tx, a.tenantId, req.edgeId, this.d.clock());
      await this.event(tx, a, row, "revoked", []);
      return row;
    });
    return { edge: edgeToProto(edge) };
  }

  async assignEdgeApps(req: { tenantId: string; edgeId: string; appIds: string[] }, ctx: HandlerContext) {
    return { edge: edgeToProto(await this.changeApps(ctx, req, "apps_assigned")) };
  }

  async unassignEdgeApps(req: { tenantId: string; edgeId: string; appIds: string[] }, ctx: HandlerContext) {
    return { edge: edgeToProto(await this.changeApps(ctx, req, "apps_unassigned")) };
  }

  private changeApps(
    ctx: HandlerContext,
    req: { tenantId: string; edgeId: string; appIds: string[] },
    change: "apps_assigned" | "apps_unassigned",
  ): Promise<EdgeRow> {
    const a = this.actor(ctx, req.tenantId);
    return this.d.db.transaction(async (tx) => {
      const before = await this.activeEdge(tx, a.tenantId, req.edgeId);
      if (before.revokedAt)
        throw domainError("FAILED_PRECONDITION", `edge agent ${before.name} (${before.id}) is revoked; register a new one`, {
          edge_id: before.id,
        });
      let next: string[];
      if (change === "apps_assigned") {
        await this.checkApps(tx, a.tenantId, req.appIds);
        next = [...new Set([...before.appIds, ...req.appIds])];
      } else {
        next = before.appIds.filter((id) => !req.appIds.includes(id));
      }
      const changed =
        change === "apps_assigned" ? next.filter((id) => !before.appIds.includes(id)) : before.appIds.filter((id) => !next.includes(id));
      if (changed.length === 0) return before;
      const row = await edgeStore.setApps(tx, a.tenantId, req.edgeId, next);
      await this.event(tx, a, row, change, changed);
      return row;
    });
  }
}

/** Durable consumer of auth's events that keeps `integration.suspended_tenants` (edge tokens of a suspended tenant are refused). */
export const TENANT_STATUS_CONSUMER = "integration-tenant-status";
/** Its subject: every auth event (it acts on TenantSuspended and TenantResumed). */
export const TENANT_STATUS_SUBJECT = "auth.>";

/** The handler of {@link TENANT_STATUS_CONSUMER}. */
export function tenantStatusHandler(clock: () => Date): EventHandler {
  return async (event, tx) => {
    const suspended =
      event.type === TenantSuspendedSchema.typeName ? true : event.type === TenantResumedSchema.typeName ? false : undefined;
    if (suspended === undefined) return;
    const tenantId = (suspended ? payloadOf(TenantSuspendedSchema, event) : payloadOf(TenantResumedSchema, event)).tenantId;
    if (tenantId) await edgeStore.setSuspended(tx, tenantId, suspended, clock());
  };
}
