/**
 * The audit trail on PostgreSQL + NATS JetStream: domain events of every service become
 * redacted, hash-chained entries per tenant; the database refuses UPDATE/DELETE; tampering
 * behind the trigger's back (as superuser) is found by VerifyAuditChain; the CSV export
 * round-trips and can be re-verified offline; listing filters and pages; access is limited
 * to tenant admins with the audit entitlement and platform operators.
 */
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { jetstream } from "@nats-io/jetstream";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ActorKind, AuditOutcome } from "../../gen/nexus/audit/v1/audit_event_pb.js";
import {
  AuditService,
  ExportAuditEventsRequestSchema,
  ListAuditEventsRequestSchema,
  type ListAuditEventsResponse,
  VerifyAuditChainRequestSchema,
} from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { PrincipalKind, Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { RunStartedSchema } from "../../gen/nexus/events/v1/agent_events_pb.js";
import {
  AccessDeniedSchema,
  ApiKeyIssuedSchema,
  RbacForbiddenSchema,
  TenantSuspendedSchema,
} from "../../gen/nexus/events/v1/auth_events_pb.js";
import { DocumentQueuedSchema, QueueReason } from "../../gen/nexus/events/v1/ingestion_events_pb.js";
import { QuotaSoftCapReachedSchema } from "../../gen/nexus/events/v1/metering_events_pb.js";
import { CorpusUpdatedSchema } from "../../gen/nexus/events/v1/retrieval_events_pb.js";
import { Period, QuotaMetric } from "../../gen/nexus/metering/v1/quota_pb.js";
import { eventually } from "../../tests/support/eventually.js";
import type { Audit } from "../../tests/support/metering-harness.js";
import { contextFor, openAudit, platformPrincipal, tenantPrincipal, uniqueTenant } from "../../tests/support/metering-harness.js";
import { deleteSuiteStreams, suiteStreams } from "../../tests/support/nats-streams.js";
import {
  createTestDatabase,
  describeWithPostgresAndNats,
  TEST_NATS_URL,
  type TestDatabase,
  uniqueToken,
} from "../../tests/support/services.js";
import { createPgDatabase } from "../kernel/db/pg-database.js";
import type { Database } from "../kernel/db/ports.js";
import { errorReason } from "../kernel/errors.js";
import { appendToStream } from "../kernel/events/event-store.js";
import { createNatsEventBus, type NatsEventBus } from "../kernel/events/nats-bus.js";
import { eventHeaders } from "../kernel/events/nats-message.js";
import type { NewEvent, RecordedEvent } from "../kernel/events/ports.js";
import { eventOf } from "../kernel/events/protobuf-event.js";
import { subjectOf } from "../kernel/events/topics.js";
import { AUDIT_TRAIL_CONSUMER } from "./audit-consumer.js";
import { entriesFromCsv } from "./audit-csv.js";
import { ChainVerifier } from "./domain/audit-entry.js";

describeWithPostgresAndNats("audit trail (PostgreSQL + NATS)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let bus: NatsEventBus;
  let audit: Audit;
  const token = uniqueToken("a").toUpperCase();
  const platform = contextFor(platformPrincipal(), AuditService);

  beforeAll(async () => {
    testDb = await createTestDatabase();
    db = await createPgDatabase({ url: testDb.url, poolSize: 6 });
    bus = await createNatsEventBus({
      db,
      nats: { servers: TEST_NATS_URL, name: "audit-trail-suite" },
      subjectPrefix: uniqueToken("p"),
      ...suiteStreams(token),
      relay: { pollIntervalMs: 50 },
      consumerHeartbeatMs: 1_000,
    });
    audit = await openAudit(db, bus, { backoff: { initialMs: 50, maxMs: 200 } });
  });

  afterAll(async () => {
    await audit?.module.shutdown?.();
    await bus?.close();
    await deleteSuiteStreams(token);
    await db?.close();
    await testDb?.drop();
  });

  async function append(
    streamId: string,
    events: NewEvent[],
    meta: { tenantId?: string; actor: string; requestId?: string },
  ): Promise<RecordedEvent[]> {
    return db.transaction((tx) => appendToStream(tx, streamId, "any", events, { metadata: meta }));
  }

  async function entryCount(tenantId: string): Promise<number> {
    const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit.entries WHERE tenant_id = $1", [tenantId]);
    return rows[0]?.n ?? 0;
  }

  async function processed(eventId: string): Promise<boolean> {
    const { rows } = await db.query("SELECT 1 FROM audit.processed_events WHERE consumer = $1 AND event_id = $2", [
      AUDIT_TRAIL_CONSUMER,
      eventId,
    ]);
    return rows.length === 1;
  }

  const admin = (tenantId: string, plan: "free" | "pro" = "pro", role: "admin" | "viewer" | "owner" = "admin") =>
    contextFor({ ...tenantPrincipal(tenantId, plan, role), keyId: `admin-${tenantId}` }, AuditService);

  /** A tenant with an admin key (issued, so the trail knows its name) and a few audited actions. */
  async function tenantWithHistory(n = 0): Promise<{ tenantId: string; keyId: string; events: RecordedEvent[] }> {
    const tenantId = uniqueTenant();
    const keyId = `key-${tenantId}`;
    const events = await append(
      `api_key-${keyId}`,
      [eventOf(ApiKeyIssuedSchema, { tenantId, keyId, kind: PrincipalKind.TENANT, name: "ci deploy key", role: Role.ADMIN })],
      { tenantId, actor: "key-platform" },
    );
    for (let i = 0; i < n; i++) {
      events.push(
        ...(await append(
          `corpus-c${i}`,
          [
            eventOf(CorpusUpdatedSchema, {
              tenantId,
              corpusId: `c${i}`,
              changedFields: ["display_name"],
              before: { display_name: `old ${i}` },
              after: { display_name: `new ${i}` },
            }),
          ],
          { tenantId, actor: keyId, requestId: `req-${i}` },
        )),
      );
    }
    await eventually("the entries", async () => (await entryCount(tenantId)) === n + 1);
    return { tenantId, keyId, events };
  }

  async function listAll(tenantId: string, filter: Record<string, unknown> = {}): Promise<ListAuditEventsResponse["events"]> {
    const out: ListAuditEventsResponse["events"] = [];
    let pageToken = "";
    do {
      const page = await audit.handler.listAuditEvents(
        create(ListAuditEventsRequestSchema, { tenantId, filter, pageSize: 2, pageToken } as never),
        platform,
      );
      out.push(...page.events);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return out;
  }

  async function exportCsv(tenantId: string, ctx = platform): Promise<string> {
    let text = "";
    const decoder = new TextDecoder();
    for await (const piece of audit.handler.exportAuditEvents(create(ExportAuditEventsRequestSchema, { tenantId } as never), ctx))
      text += decoder.decode(piece.data);
    return text;
  }

  async function refusal(p: Promise<unknown>): Promise<ConnectError> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectError);
    return err as ConnectError;
  }

  it("turns domain events into a redacted per-tenant chain with actors, outcomes and before/after", async () => {
    const { tenantId, keyId } = await tenantWithHistory();
    await append(
      "corpus-c1",
      [
        eventOf(CorpusUpdatedSchema, {
          tenantId,
          corpusId: "c1",
          changedFields: ["provider_config"],
          before: { provider_config: { region: "eu", credentials: { api_key: "sk-live-abc", nested: [{ token: "t0k3n", keep: "yes" }] } } },
          after: { provider_config: { region: "us", password: "hunter2", headers: { Authorization: "Bearer zzzzzzzzzz" } } },
        }),
      ],
      { tenantId, actor: keyId, requestId: "req-corpus" },
    );
    await append(
      `doc-d1`,
      [
        eventOf(DocumentQueuedSchema, {
          tenantId,
          corpusId: "c1",
          documentId: "d1",
          version: 1n,
          reason: QueueReason.REINDEX,
          filename: "a.txt",
        }),
      ],
      { tenantId, actor: keyId },
    );
    await append(
      `auth-access-${tenantId}`,
      [
        eventOf(RbacForbiddenSchema, {
          tenantId,
          keyId,
          role: Role.VIEWER,
          procedure: "/nexus.auth.v1.AuthService/SetPlan",
          reason: "RBAC_FORBIDDEN",
        }),
      ],
      { tenantId, actor: keyId },
    );
    await append(
      `run-r1`,
      [
        eventOf(RunStartedSchema, {
          tenantId,
          plan: Plan.PRO,
          requestId: "run-req-1",
          sessionId: "s1",
          corpusId: "c1",
          provider: "extractive",
        }),
      ],
      { tenantId, actor: keyId },
    );
    await append(
      `quota-${tenantId}`,
      [
        eventOf(QuotaSoftCapReachedSchema, {
          tenantId,
          period: Period.DAY,
          metric: QuotaMetric.RUNS,
          limit: 10,
          used: 8,
          softCapRatio: 0.8,
        }),
      ],
      { tenantId, actor: keyId },
    );
    await eventually("six entries", async () => (await entryCount(tenantId)) === 6);

    const events = await listAll(tenantId);
    expect(events.map((e) => e.eventType)).toEqual([
      "quota.soft_cap_reached",
      "run.invoked",
      "rbac.forbidden",
      "documents.reindex.enqueued",
      "corpora.updated",
      "auth.api_key.created",
    ]);
    expect(events.map((e) => Number(e.sequence))).toEqual([6, 5, 4, 3, 2, 1]);
    const corpus = events[4]!;
    expect(corpus).toMatchObject({
      tenantId,
      action: "nexus.retrieval.v1.RetrievalService/UpdateCorpus",
      resource: { type: "corpus", id: "c1" },
      outcome: AuditOutcome.SUCCESS,
      requestId: "req-corpus",
      actor: { kind: ActorKind.TENANT, keyId, name: "ci deploy key", role: "admin" },
    });
    expect(corpus.before).toEqual({
      provider_config: { region: "eu", credentials: { api_key: "[REDACTED]", nested: [{ token: "[REDACTED]", keep: "yes" }] } },
    });
    expect(corpus.after).toEqual({ provider_config: { region: "us", password: "[REDACTED]", headers: { Authorization: "[REDACTED]" } } });
    const stored = await db.query<{ raw: string }>("SELECT before::text || after::text AS raw FROM audit.entries WHERE tenant_id = $1", [
      tenantId,
    ]);
    expect(stored.rows.map((r) => r.raw ?? "").join("")).not.toMatch(/sk-live-abc|t0k3n|hunter2|zzzzzzzzzz/);

    expect(events[2]).toMatchObject({
      outcome: AuditOutcome.FAILURE,
      action: "nexus.auth.v1.AuthService/SetPlan",
      actor: { role: "viewer" },
    });
    expect(events[2]!.metadata).toMatchObject({ reason: "RBAC_FORBIDDEN" });
    expect(events[1]).toMatchObject({ requestId: "run-req-1", resource: { type: "session", id: "s1" } });
    expect(events[5]).toMatchObject({
      actor: { kind: ActorKind.UNSPECIFIED, keyId: "key-platform" },
      after: { name: "ci deploy key", role: "admin", kind: "tenant" },
    });
    // Chain links: each entry points at its predecessor's hash.
    for (let i = 0; i < events.length - 1; i++) expect(events[i]!.prevHash).toBe(events[i + 1]!.hash);
    expect(events[5]!.prevHash).toBe("0".repeat(64));
    const verified = await audit.handler.verifyAuditChain(create(VerifyAuditChainRequestSchema, { tenantId } as never), platform);
    expect(verified).toMatchObject({ ok: true, entriesChecked: 6n, headHash: events[0]!.hash });
  });

  it("a redelivered event adds no entry", async () => {
    const { tenantId, events } = await tenantWithHistory(1);
    const event = events[1]!;
    await jetstream(bus.nats).publish(subjectOf(bus.subjectPrefix, event.topic), JSON.stringify(event.payload), {
      msgID: `${event.eventId}:again`,
      headers: eventHeaders(event),
    });
    // A marker after it: the consumer handles in order, so once the marker is in, the copy was seen.
    const [marker] = await append("corpus-marker", [eventOf(CorpusUpdatedSchema, { tenantId, corpusId: "m" })], { tenantId, actor: "x" });
    await eventually("the marker", () => processed(marker!.eventId));
    expect(await entryCount(tenantId)).toBe(3);
  });

  it("the database refuses UPDATE and DELETE of entries", async () => {
    const { tenantId } = await tenantWithHistory();
    const update = await db.query("UPDATE audit.entries SET action = 'x' WHERE tenant_id = $1", [tenantId]).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
    expect(update?.message).toMatch(/append-only/);
    expect(update?.code).toBe("23001");
    const del = await db.query("DELETE FROM audit.entries WHERE tenant_id = $1", [tenantId]).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(del?.code).toBe("23001");
    expect(await entryCount(tenantId)).toBe(1);
  });

  /** Runs SQL as the superuser with the append-only triggers off (what an intruder with DBA rights does). */
  async function tamper(sql: string, params: unknown[]): Promise<void> {
    const client = new pg.Client({ connectionString: testDb.url });
    await client.connect();
    try {
      await client.query("BEGIN");
      await client.query("SET LOCAL session_replication_role = replica");
      await client.query(sql, params);
      await client.query("COMMIT");
    } finally {
      await client.end();
    }
  }

  it("VerifyAuditChain finds an entry altered behind the trigger's back", async () => {
    const { tenantId } = await tenantWithHistory(4);
    await tamper(
      "UPDATE audit.entries SET metadata = jsonb_set(metadata, '{changed_fields}', '[\"nothing\"]') WHERE tenant_id = $1 AND sequence = 3",
      [tenantId],
    );
    const v = await audit.handler.verifyAuditChain(create(VerifyAuditChainRequestSchema, { tenantId } as never), platform);
    expect(v.ok).toBe(false);
    expect(v.firstBrokenLink).toMatchObject({ sequence: 3n, problem: "hash_mismatch" });
    expect(v.entriesChecked).toBe(3n);
  });

  it("VerifyAuditChain finds a re-hashed entry by the broken link after it, and a deleted one by the gap", async () => {
    const rehashed = await tenantWithHistory(3);
    await tamper("UPDATE audit.entries SET hash = repeat('a', 64) WHERE tenant_id = $1 AND sequence = 2", [rehashed.tenantId]);
    const v1 = await audit.handler.verifyAuditChain(
      create(VerifyAuditChainRequestSchema, { tenantId: rehashed.tenantId } as never),
      platform,
    );
    expect(v1.firstBrokenLink).toMatchObject({ sequence: 2n, problem: "hash_mismatch" });

    const deleted = await tenantWithHistory(3);
    await tamper("DELETE FROM audit.entries WHERE tenant_id = $1 AND sequence = 3", [deleted.tenantId]);
    const v2 = await audit.handler.verifyAuditChain(
      create(VerifyAuditChainRequestSchema, { tenantId: deleted.tenantId } as never),
      platform,
    );
    expect(v2).toMatchObject({ ok: false, firstBrokenLink: { sequence: 3n, problem: "sequence_gap" } });
  });

  it("exports CSV that round-trips exactly and re-verifies offline", async () => {
    const { tenantId, keyId } = await tenantWithHistory(2);
    await append(`tenant-${tenantId}`, [eventOf(TenantSuspendedSchema, { tenantId, reason: 'unpaid, "final" notice\r\nsecond line' })], {
      tenantId,
      actor: "key-platform",
    });
    await eventually("four entries", async () => (await entryCount(tenantId)) === 4);
    const csv = await exportCsv(tenantId, admin(tenantId));
    expect(csv.startsWith("sequence,id,tenant_id,occurred_at,event_type,")).toBe(true);
    expect(csv.endsWith("\r\n")).toBe(true);
    const parsed = entriesFromCsv(csv, tenantId);
    const listed = (await listAll(tenantId)).reverse();
    expect(parsed.map((e) => [e.sequence, e.id, e.hash, e.prevHash])).toEqual(
      listed.map((e) => [Number(e.sequence), e.id, e.hash, e.prevHash]),
    );
    expect(parsed[3]!.metadata).toEqual({ reason: 'unpaid, "final" notice\r\nsecond line' });
    expect(parsed[1]).toMatchObject({
      eventType: "corpora.updated",
      actor: { keyId, name: "ci deploy key", role: "admin" },
      before: { display_name: "old 0" },
    });
    const verifier = new ChainVerifier();
    for (const e of parsed) expect(verifier.check(e)).toBeUndefined();
    expect(verifier.headHash).toBe(listed[3]!.hash);
    // Editing the file breaks the chain too.
    const forged = entriesFromCsv(csv.replace("new 1", "new X"), tenantId);
    const v2 = new ChainVerifier();
    expect(forged.map((e) => v2.check(e)).find(Boolean)).toMatchObject({ sequence: 3, problem: "hash_mismatch" });
  });

  it("lists with filters and cursors bound to their filter", async () => {
    const { tenantId, keyId } = await tenantWithHistory(5);
    await append(
      `auth-access-${tenantId}`,
      [eventOf(RbacForbiddenSchema, { tenantId, keyId, role: Role.EDITOR, procedure: "/x.Y/Z", reason: "RBAC_FORBIDDEN" })],
      {
        tenantId,
        actor: keyId,
      },
    );
    await eventually("seven entries", async () => (await entryCount(tenantId)) === 7);
    const corpora = await listAll(tenantId, { eventTypes: ["corpora.updated"] });
    expect(corpora).toHaveLength(5);
    expect(corpora.map((e) => e.resource?.id)).toEqual(["c4", "c3", "c2", "c1", "c0"]);
    expect((await listAll(tenantId, { outcome: AuditOutcome.FAILURE })).map((e) => e.eventType)).toEqual(["rbac.forbidden"]);
    expect(await listAll(tenantId, { actorKeyId: "key-platform" })).toHaveLength(1);
    expect(await listAll(tenantId, { resourceType: "corpus", resourceId: "c2" })).toHaveLength(1);
    const future = await listAll(tenantId, { startTime: { seconds: BigInt(Math.floor(Date.now() / 1000) + 3600), nanos: 0 } });
    expect(future).toHaveLength(0);

    const first = await audit.handler.listAuditEvents(
      create(ListAuditEventsRequestSchema, { tenantId, filter: { eventTypes: ["corpora.updated"] }, pageSize: 2, pageToken: "" } as never),
      platform,
    );
    expect(first.nextPageToken).not.toBe("");
    const err = await refusal(
      audit.handler.listAuditEvents(
        create(ListAuditEventsRequestSchema, { tenantId, filter: {}, pageSize: 2, pageToken: first.nextPageToken } as never),
        platform,
      ),
    );
    expect(errorReason(err)).toBe("INVALID_CURSOR");
    const junk = await refusal(
      audit.handler.listAuditEvents(
        create(ListAuditEventsRequestSchema, { tenantId, pageSize: 2, pageToken: "not-a-token" } as never),
        platform,
      ),
    );
    expect(errorReason(junk)).toBe("INVALID_CURSOR");
  });

  it("is for tenant admins with the audit entitlement and platform operators only", async () => {
    const { tenantId } = await tenantWithHistory();
    expect((await audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {} as never), admin(tenantId))).events).toHaveLength(
      1,
    );
    expect(
      (await audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {} as never), admin(tenantId, "pro", "owner"))).events,
    ).toHaveLength(1);
    const viewer = await refusal(
      audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {} as never), admin(tenantId, "pro", "viewer")),
    );
    expect(errorReason(viewer)).toBe("RBAC_FORBIDDEN");
    const free = await refusal(audit.handler.verifyAuditChain(create(VerifyAuditChainRequestSchema, {} as never), admin(tenantId, "free")));
    expect(errorReason(free)).toBe("FEATURE_NOT_ENABLED");
    const other = await refusal(
      audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, { tenantId: uniqueTenant() } as never), admin(tenantId)),
    );
    expect(errorReason(other)).toBe("TENANT_MISMATCH");
    const none = await refusal(
      audit.handler.listAuditEvents(create(ListAuditEventsRequestSchema, {} as never), contextFor(undefined, AuditService)),
    );
    expect(none.code).toBe(Code.Unauthenticated);
  });

  it("keeps installation-wide entries (anonymous access failures) in their own chain for platform operators", async () => {
    const [denied] = await append(
      "auth-access",
      [
        eventOf(AccessDeniedSchema, {
          reason: "AUTH_UNAUTHORIZED",
          procedure: "/nexus.audit.v1.AuditService/ListAuditEvents",
          peerAddress: "10.0.0.9",
        }),
      ],
      {
        actor: "anonymous",
      },
    );
    await eventually("the access failure", () => processed(denied!.eventId));
    const page = await audit.handler.listAuditEvents(
      create(ListAuditEventsRequestSchema, { tenantId: "", filter: { eventTypes: ["auth.access.failure"] } } as never),
      platform,
    );
    const entry = page.events.find((e) => e.sourceEventId === denied!.eventId);
    expect(entry).toMatchObject({
      tenantId: "",
      outcome: AuditOutcome.FAILURE,
      actor: { kind: ActorKind.ANONYMOUS },
      action: "nexus.audit.v1.AuditService/ListAuditEvents",
    });
    expect(entry?.metadata).toMatchObject({ reason: "AUTH_UNAUTHORIZED", peer_address: "10.0.0.9" });
    expect((await audit.handler.verifyAuditChain(create(VerifyAuditChainRequestSchema, { tenantId: "" } as never), platform)).ok).toBe(
      true,
    );
  });
});
