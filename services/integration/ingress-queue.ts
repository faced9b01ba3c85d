import { createHash, randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { WorkflowMessageAcceptedSchema } from "../../gen/nexus/events/v1/integration_events_pb.js";
import { currentRequestMeta } from "../kernel/context.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import type { DirectEvent, EventBus, EventMetadata } from "../kernel/events/index.js";
import { store, type WorkflowRow } from "./adapters/postgres.js";

/** The dedupe window of accepted messages (REL-05): 24 h. */
export const DEDUPE_WINDOW_MS = 24 * 3_600_000;

/** Topic of a workflow's messages: `integration.wf.<id>` (one subject and durable consumer per workflow). */
export const workflowTopic = (workflowId: string) => `integration.wf.${workflowId}`;

/** A message accepted (or recognised as a duplicate). */
export interface Accepted {
  messageId: string;
  duplicate: boolean;
  workflows: number;
}

/** What feeds a message to workflows: a sender app, an MQTT source, or one workflow (ExecuteWorkflow). */
export type Feed = { appId: string } | { mqttId: string } | { workflowId: string };

/** One message to accept. */
export interface IngressItem {
  tenantId: string;
  /** `app:<id>`, `mqtt:<id>`, `execute:<workflow id>`: the dedupe scope. */
  source: string;
  /** `cid:<client message id>` or `sha1:<payload hash>`. */
  dedupeKey: string;
  data: Record<string, unknown>;
  actor: string;
  feed: Feed;
}

interface Job {
  item: IngressItem;
  /** Set on the messages of one ordered group (submitOrdered): a batch never splits it. */
  group?: symbol;
  metadata: EventMetadata;
  resolve(value: Accepted): void;
  reject(err: unknown): void;
}

/** The id of a message's event for one workflow: the same on every publish of it, so the bus drops repeats. */
export function messageEventId(messageId: string, workflowId: string): string {
  const h = createHash("sha256").update(`${messageId}\u0000${workflowId}`).digest("hex");
  const variant = ((Number.parseInt(h.charAt(16), 16) & 3) | 8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const feeds = (wf: WorkflowRow, feed: Feed): boolean =>
  "appId" in feed ? wf.sourceAppId === feed.appId : "mqttId" in feed ? wf.sourceMqttId === feed.mqttId : wf.id === feed.workflowId;

/** Options of {@link IngressQueue}. */
export interface IngressQueueOptions {
  db: Database;
  publish: EventBus["publish"];
  clock: () => Date;
  logger: Logger;
  /** Messages per batch. Default 256. */
  maxBatch?: number;
  /** Batches in flight at once (claiming, publishing). Default 4. */
  maxInFlight?: number;
  /**
   * Messages waiting for a batch at most (beyond the ones in flight). Default 4 × maxBatch ×
   * maxInFlight (4096). A message that would exceed it is refused at once with
   * RESOURCE_EXHAUSTED INGRESS_QUEUE_FULL and RetryInfo, so a spike faster than the bus and the
   * database can take pushes back on the senders instead of growing the process's memory.
   */
  maxQueued?: number;
}

/** How long a sender refused by a full ingress queue should wait: about one batch's round trip. */
export const QUEUE_FULL_RETRY_MS = 1_000;

/**
 * Ingress without the event store: messages that arrive together are accepted together. A
 * batch costs one statement to claim every dedupe key (`integration.messages`, 24 h), one to
 * find the workflows fed, the JetStream publishes of all its messages at once (pipelined;
 * `Nats-Msg-Id` = a per message and workflow id) and one statement to mark them published —
 * no outbox row, no installation-wide lock. A caller's promise resolves once the bus holds its
 * message: accepted means durable. A publish that fails leaves the claim unpublished, so the
 * sender's retry (same client message id or payload) publishes the message again under the
 * same ids instead of being told "duplicate" for a message that never got out.
 */
export class IngressQueue {
  private queue: Job[] = [];
  private inFlight = 0;
  private unmarked: string[] = [];
  private marking: Promise<void> | undefined;
  private readonly maxBatch: number;
  private readonly maxInFlight: number;
  private readonly maxQueued: number;

  constructor(private readonly o: IngressQueueOptions) {
    this.maxBatch = o.maxBatch ?? 256;
    this.maxInFlight = o.maxInFlight ?? 4;
    this.maxQueued = o.maxQueued ?? 4 * this.maxBatch * this.maxInFlight;
  }

  /** Messages waiting for a batch (not yet in flight). */
  get queued(): number {
    return this.queue.length;
  }

  /** The refusal when `n` more messages would not fit (an ordered group larger than the bound fits an empty queue). */
  private full(n: number) {
    if (this.queue.length === 0 || this.queue.length + n <= this.maxQueued) return undefined;
    return domainError(
      "INGRESS_QUEUE_FULL",
      `ingress is at capacity (${this.queue.length} messages waiting); send again after the retry delay: a message is accepted once`,
      { queued: this.queue.length, limit: this.maxQueued },
      { retryAfterMs: QUEUE_FULL_RETRY_MS, headers: { "retry-after": String(Math.ceil(QUEUE_FULL_RETRY_MS / 1000)) } },
    );
  }

  /** Accepts one message; resolves once it is on the bus (or known as a duplicate). */
  submit(item: IngressItem): Promise<Accepted> {
    const refusal = this.full(1);
    if (refusal) return Promise.reject(refusal);
    const accepted = this.enqueue(item);
    this.pump();
    return accepted;
  }

  /**
   * Accepts messages in this order (an edge agent's forwarded batch): they go into one batch,
   * whose publishes leave in array order, so the bus holds them in this order. Resolves with one
   * answer per message, or rejects them all (nothing published, the sender retries).
   */
  submitOrdered(items: readonly IngressItem[]): Promise<Accepted[]> {
    if (items.length === 0) return Promise.resolve([]);
    const refusal = this.full(items.length);
    if (refusal) return Promise.reject(refusal);
    const group = Symbol("ordered");
    const answers = items.map((item) => this.enqueue(item, group));
    this.pump();
    return Promise.all(answers);
  }

  private enqueue(item: IngressItem, group?: symbol): Promise<Accepted> {
    const request = currentRequestMeta();
    const metadata: EventMetadata = {
      tenantId: item.tenantId,
      actor: item.actor,
      ...(request ? { requestId: request.requestId, correlationId: request.correlationId } : {}),
    };
    return new Promise<Accepted>((resolve, reject) => {
      this.queue.push({ item, metadata, resolve, reject, ...(group ? { group } : {}) });
    });
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length > 0) {
      let n = Math.min(this.maxBatch, this.queue.length);
      const group = this.queue[n - 1]?.group;
      if (group) while (n < this.queue.length && this.queue[n]?.group === group) n++;
      const batch = this.queue.splice(0, n);
      this.inFlight++;
      void this.run(batch)
        .catch((err: unknown) => {
          for (const job of batch) job.reject(err);
        })
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }

  private async run(batch: Job[]): Promise<void> {
    // The same key twice in one batch: the first is the message, the others its duplicates.
    const leaders = new Map<string, { job: Job; followers: Job[] }>();
    for (const job of batch) {
      const k = `${job.item.tenantId}\u0000${job.item.source}\u0000${job.item.dedupeKey}`;
      const found = leaders.get(k);
      if (found) found.followers.push(job);
      else leaders.set(k, { job, followers: [] });
    }
    const groups = [...leaders.values()];
    // The dedupe claims and the workflows fed are independent: one round trip for both.
    const by = { appIds: new Set<string>(), mqttIds: new Set<string>(), workflowIds: new Set<string>() };
    for (const { job } of groups) {
      const f = job.item.feed;
      if ("appId" in f) by.appIds.add(f.appId);
      else if ("mqttId" in f) by.mqttIds.add(f.mqttId);
      else by.workflowIds.add(f.workflowId);
    }
    const [claims, workflows] = await Promise.all([
      store.claimMessages(
        this.o.db,
        groups.map((g) => ({ ...g.job.item, messageId: randomUUID() })),
        this.o.clock(),
        DEDUPE_WINDOW_MS,
      ),
      store.workflowsFeeding(this.o.db, { appIds: [...by.appIds], mqttIds: [...by.mqttIds], workflowIds: [...by.workflowIds] }),
    ]);
    const toPublish = groups.flatMap((g, i) => {
      const claim = claims[i] as (typeof claims)[number];
      return claim.duplicate && claim.published ? [] : [{ group: g, claim }];
    });
    const fed = new Map<(typeof groups)[number], number>();
    if (toPublish.length > 0) {
      const events: DirectEvent[] = [];
      for (const { group, claim } of toPublish) {
        const { item, metadata } = group.job;
        const wfs = workflows.filter((wf) => wf.tenantId === item.tenantId && feeds(wf, item.feed));
        fed.set(group, wfs.length);
        // The message's canonical protobuf JSON, written directly (no round trip of the
        // payload through google.protobuf.Struct for every message).
        for (const wf of wfs)
          events.push({
            type: WorkflowMessageAcceptedSchema.typeName,
            topic: workflowTopic(wf.id),
            payload: {
              tenantId: item.tenantId,
              messageId: claim.messageId,
              workflowId: wf.id,
              workflowVersion: wf.currentVersion,
              source: item.source,
              payload: item.data,
            },
            metadata,
            eventId: messageEventId(claim.messageId, wf.id),
            streamId: `integration_message-${claim.messageId}`,
          });
      }
      try {
        await this.o.publish(events);
      } catch (err) {
        this.o.logger.warn({ err, messages: toPublish.length }, "ingress publish failed; the senders retry");
        const failed = new Set(toPublish.map((p) => p.group));
        const refusal = domainError(
          "DEPENDENCY_UNAVAILABLE",
          "the message could not be put on the event bus; send it again (same X-Message-Id or payload): it is accepted once",
          {},
          { cause: err, retryAfterMs: 1_000 },
        );
        groups.forEach((g, i) => {
          if (!failed.has(g)) this.answer(g, claims[i] as (typeof claims)[number], 0);
          else for (const job of [g.job, ...g.followers]) job.reject(refusal);
        });
        return;
      }
      this.markPublished(toPublish.map((p) => p.claim.messageId));
    }
    // A claim that was there before is a duplicate, even when this batch put its message on
    // the bus again (an earlier attempt's publish failed, or it is still in flight elsewhere).
    groups.forEach((g, i) => this.answer(g, claims[i] as (typeof claims)[number], fed.get(g) ?? 0));
  }

  /**
   * Notes in the background that messages are on the bus (coalesced into one statement while
   * the previous one runs). Answering does not wait for it: until it commits — or forever, if
   * the process dies first — a retry of such a message publishes it again under the same ids,
   * which the bus and the consumers drop.
   */
  private markPublished(messageIds: string[]): void {
    this.unmarked.push(...messageIds);
    if (this.marking) return;
    this.marking = (async () => {
      while (this.unmarked.length > 0) {
        const ids = this.unmarked.splice(0, 5_000);
        await store.markPublished(this.o.db, ids).catch((err: unknown) => {
          this.o.logger.warn({ err }, "could not mark ingress messages published");
        });
      }
    })().finally(() => {
      this.marking = undefined;
    });
  }

  /** Waits for the background bookkeeping (shutdown, tests). */
  async settled(): Promise<void> {
    while (this.marking) await this.marking;
  }

  private answer(g: { job: Job; followers: Job[] }, claim: { messageId: string; duplicate: boolean }, workflows: number): void {
    g.job.resolve({ messageId: claim.messageId, duplicate: claim.duplicate, workflows: claim.duplicate ? 0 : workflows });
    for (const f of g.followers) f.resolve({ messageId: claim.messageId, duplicate: true, workflows: 0 });
  }
}
