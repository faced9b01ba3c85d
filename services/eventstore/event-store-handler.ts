import { create, toJsonString } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type EventStoreService,
  type GetSagaRequest,
  GetSagaResponseSchema,
  ListEventTypesResponseSchema,
  type ListSagasRequest,
  ListSagasResponseSchema,
  type ReadStreamHistoryRequest,
  ReadStreamHistoryResponseSchema,
  type StartTenantOffboardingRequest,
  StartTenantOffboardingResponseSchema,
  type WatchEventsRequest,
  type WatchEventsResponse,
  WatchEventsResponseSchema,
} from "../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import { principalOf, requireTenantPrincipal, tenantScope } from "../kernel/authz/tenant-scope.js";
import type { Queryable } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { RecordedEvent } from "../kernel/events/ports.js";
import { counterPosition, pageTokens, sequencePosition } from "../kernel/paging/index.js";
import { listSagas, sagaStatus, type TenantOffboardingStarter } from "../kernel/sagas/index.js";
import type { ChangeFeed } from "./change-feed.js";
import { eventCatalogue, eventDescriptorSet } from "./event-types.js";
import { sagaMessage, sagaSummaryMessage } from "./saga-messages.js";
import type { StreamHistory } from "./stream-history.js";

/** ReadStreamHistory continuation tokens: the last version returned, bound to the query. */
const historyTokens = pageTokens(counterPosition);
/** ListSagas page tokens: the store position of the last saga's start. */
const sagaTokens = pageTokens(sequencePosition);

/** A stored event as the API shows it (payload as JSON text; envelope.payload unset). */
function storedEventMessage(e: RecordedEvent) {
  return {
    envelope: {
      eventId: e.eventId,
      eventType: e.type,
      topic: e.topic,
      streamId: e.streamId,
      version: BigInt(e.version),
      position: e.position,
      tenantId: e.metadata.tenantId ?? "",
      occurredAt: timestampFromDate(e.occurredAt),
      correlationId: e.metadata.correlationId ?? "",
      requestId: e.metadata.requestId ?? "",
      traceparent: e.metadata.traceparent ?? "",
      tracestate: e.metadata.tracestate ?? "",
      actor: e.metadata.actor ?? "",
    },
    payloadJson: JSON.stringify(e.payload ?? null),
    schemaVersion: Number(e.metadata.schemaVersion ?? "1"),
  };
}

/** nexus.eventstore.v1.EventStoreService: the tenant change feed and the event catalogue. */
export class EventStoreHandler implements ServiceImpl<typeof EventStoreService> {
  private descriptors: Uint8Array | undefined;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly history: StreamHistory,
    private readonly db: Queryable,
    private readonly offboarding?: TenantOffboardingStarter,
  ) {}

  async startTenantOffboarding(req: StartTenantOffboardingRequest, ctx: HandlerContext) {
    // The permission table admits platform operators only; the confirmation guards against a
    // wrong id pasted into a call that destroys a tenant.
    const principal = principalOf(ctx);
    if (req.confirmation !== req.tenantId) {
      throw domainError(
        "CONFIRMATION_MISMATCH",
        `confirmation must repeat the tenant id ${JSON.stringify(req.tenantId)}: offboarding destroys the tenant's data`,
        { field: "confirmation", tenant_id: req.tenantId },
      );
    }
    if (!this.offboarding) throw domainError("FAILED_PRECONDITION", "this process cannot start sagas (no saga runtime configured)");
    const { saga, started } = await this.offboarding.start({ tenantId: req.tenantId, reason: req.reason, actor: principal.keyId });
    return create(StartTenantOffboardingResponseSchema, { saga: sagaMessage(saga), started });
  }

  async getSaga(req: GetSagaRequest, ctx: HandlerContext) {
    // Tenant admins see their own tenant's sagas; platform operators every saga (offboarding
    // runs while the tenant is suspended, so only they can follow it). Anything else is
    // NOT_FOUND, not PERMISSION_DENIED: a saga id of another tenant is not disclosed.
    const principal = principalOf(ctx);
    const saga = await sagaStatus(this.db, req.sagaId);
    if (!saga || (principal.kind === "tenant" && saga.tenantId !== principal.tenantId)) {
      throw domainError("NOT_FOUND", `no saga ${req.sagaId}`, { saga_id: req.sagaId });
    }
    return create(GetSagaResponseSchema, { saga: sagaMessage(saga) });
  }

  async listSagas(req: ListSagasRequest, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    const tenantId = principal.kind === "tenant" ? tenantScope(principal, req.tenantId) : req.tenantId || undefined;
    const query = { tenantId: tenantId ?? "", name: req.name };
    const before = sagaTokens.decode(req.pageToken, query);
    const size = req.pageSize === 0 ? 50 : req.pageSize;
    const rows = await listSagas(this.db, {
      limit: size + 1,
      ...(tenantId ? { tenantId } : {}),
      ...(req.name ? { name: req.name } : {}),
      ...(before !== undefined ? { beforePosition: before } : {}),
    });
    const page = rows.slice(0, size);
    const last = page.at(-1);
    return create(ListSagasResponseSchema, {
      sagas: page.map(sagaSummaryMessage),
      nextPageToken: rows.length > size && last ? sagaTokens.encode(last.position, query) : "",
    });
  }

  async *watchEvents(req: WatchEventsRequest, ctx: HandlerContext): AsyncGenerator<WatchEventsResponse> {
    // Tenant admins read their own tenant's feed; the permission table admits no platform key.
    const principal = requireTenantPrincipal(principalOf(ctx), "the change feed is a tenant's: use a key of the tenant");
    const tenantId = tenantScope(principal, req.tenantId);
    const items = this.feed.watch(
      { tenantId, streamIds: req.streamIds, types: req.eventTypes, afterPosition: req.afterPosition, client: principal.keyId },
      ctx.signal,
    );
    for await (const item of items) {
      switch (item.kind) {
        case "event":
          yield create(WatchEventsResponseSchema, { kind: { case: "event", value: storedEventMessage(item.event) } });
          break;
        case "caught_up":
          yield create(WatchEventsResponseSchema, { kind: { case: "caughtUp", value: { position: item.position } } });
          break;
        case "heartbeat":
          yield create(WatchEventsResponseSchema, { kind: { case: "heartbeat", value: { position: item.position } } });
          break;
        default: {
          const _exhaustive: never = item;
          return _exhaustive;
        }
      }
    }
  }

  async readStreamHistory(req: ReadStreamHistoryRequest, ctx: HandlerContext) {
    const principal = requireTenantPrincipal(principalOf(ctx), "temporal queries read a tenant's history: use a key of the tenant");
    const tenantId = tenantScope(principal, req.tenantId);
    if (!req.startTime || !req.endTime)
      throw domainError("INVALID_ARGUMENT", "start_time and end_time are required", { field: "start_time" });
    const from = timestampDate(req.startTime);
    const to = timestampDate(req.endTime);
    if (!(to > from)) throw domainError("INVALID_ARGUMENT", "end_time must be after start_time", { field: "end_time" });
    const binding = { tenantId, streamId: req.streamId, from: from.getTime(), to: to.getTime() };
    const afterVersion = req.pageToken === "" ? 0 : historyTokens.decode(req.pageToken, binding);
    if (afterVersion === undefined) {
      throw domainError("INVALID_CURSOR", "page_token does not belong to this stream and range; start without it", { field: "page_token" });
    }
    const page = await this.history.read({ tenantId, keyId: principal.keyId, streamId: req.streamId, from, to, afterVersion });
    return create(ReadStreamHistoryResponseSchema, {
      events: page.events.map(storedEventMessage),
      partial: page.partial,
      nextPageToken: page.partial ? historyTokens.encode(page.lastVersion, binding) : "",
      eventsScanned: BigInt(page.scanned),
    });
  }

  async listEventTypes() {
    this.descriptors ??= eventDescriptorSet();
    return create(ListEventTypesResponseSchema, { eventTypes: eventCatalogue(), fileDescriptorSet: this.descriptors });
  }
}

/** For tests and logs: a response as JSON text. */
export const watchResponseJson = (m: WatchEventsResponse): string => toJsonString(WatchEventsResponseSchema, m);
