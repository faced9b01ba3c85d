import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { HoldScope, RetentionAction, RetentionCategory } from "../gen/nexus/governance/v1/governance_service_pb.js";
import { auditRetention } from "../services/audit/audit-retention.js";
import type { NexusClient } from "../services/client/index.js";
import { createPgDatabase } from "../services/kernel/db/pg-database.js";
import type { Database } from "../services/kernel/db/ports.js";
import { errorReason } from "../services/kernel/errors.js";
import {
  activeLegalHolds,
  assertNoLegalHold,
  listRetentionReports,
  placeLegalHold,
  releaseLegalHold,
  runRetention,
  setRetentionPolicy,
} from "../services/kernel/governance/index.js";
import { createKeyring, parseMasterKeys } from "../services/kernel/keyring/index.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { NEXUS_BIN } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

const run = promisify(execFile);

/**
 * Retention and legal holds on a real `nexus dev` mesh over PostgreSQL: the agent's retention
 * task (every second here) expires exactly the sessions a tenant's policy says, never one under
 * a hold; DeleteSession under a hold is refused; the audit chain still verifies afterwards.
 */
describeWithPostgres("retention and legal holds (nexus dev on PostgreSQL)", () => {
  let mesh: AgentMesh;
  let db: Database;
  let owner: NexusClient;
  let other: NexusClient;
  let ownerTenant: string;
  let otherTenant: string;

  const newSession = async (client: NexusClient, message = "How do I rotate an API key?") => {
    let sessionId = "";
    for await (const e of client.agent.run({ corpusId: "handbook", message })) {
      if (e.event.case === "accepted") sessionId = e.event.value.sessionId;
    }
    return sessionId;
  };
  const tenantOf = async (sessionId: string) =>
    (await db.query<{ tenant_id: string }>("SELECT tenant_id FROM agent.sessions WHERE session_id = $1", [sessionId])).rows[0]?.tenant_id ??
    "";
  const age = (sessionId: string, days: number) =>
    db.transaction(async (tx) => {
      await tx.query(`UPDATE agent.sessions SET updated_at = now() - make_interval(days => $2) WHERE session_id = $1`, [sessionId, days]);
      await tx.query(`UPDATE agent.messages SET created_at = now() - make_interval(days => $2) WHERE session_id = $1`, [sessionId, days]);
    });
  const messages = async (sessionId: string) =>
    (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM agent.messages WHERE session_id = $1", [sessionId])).rows[0]?.n ?? 0;

  beforeAll(async () => {
    mesh = await startAgentMesh({ NEXUS_RETENTION_INTERVAL_MS: "1000" });
    db = await createPgDatabase({ url: mesh.databaseUrl });
    owner = mesh.client();
    await ingestCorpus(owner, "handbook", [
      { id: "hb-keys", text: "Rotate an API key with RotateApiKey; the old key keeps working for a grace period." },
    ]);
    const b = await mesh.newTenant("pro");
    other = mesh.client(b.key);
    otherTenant = b.tenantId;
    await ingestCorpus(other, "handbook", [
      { id: "hb-keys", text: "Rotate an API key with RotateApiKey; the old key keeps working for a grace period." },
    ]);
  }, 180_000);
  afterAll(async () => {
    await db?.close();
    await mesh?.close();
  });

  it("refuses DeleteSession under a session or tenant hold with LEGAL_HOLD_ACTIVE, and deletes once released", async () => {
    const sessionId = await newSession(owner);
    ownerTenant = await tenantOf(sessionId);
    const hold = await placeLegalHold(db, { tenantId: ownerTenant, scope: "session", subjectId: sessionId, reason: "case 42" });
    const refused = await owner.agent.deleteSession({ sessionId }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: Code.FailedPrecondition });
    expect(errorReason(refused)).toBe("LEGAL_HOLD_ACTIVE");
    expect(String((refused as Error).message)).toContain(hold.holdId);
    expect((await owner.agent.getSession({ sessionId })).session?.id).toBe(sessionId);

    await releaseLegalHold(db, ownerTenant, hold.holdId, "counsel");
    const tenantHold = await placeLegalHold(db, { tenantId: ownerTenant, scope: "tenant", reason: "litigation" });
    await expect(owner.agent.deleteSession({ sessionId })).rejects.toMatchObject({ code: Code.FailedPrecondition });
    await releaseLegalHold(db, ownerTenant, tenantHold.holdId);

    await owner.agent.deleteSession({ sessionId });
    await expect(owner.agent.getSession({ sessionId })).rejects.toMatchObject({ code: Code.NotFound });
    // Releasing twice is a clear NOT_FOUND.
    await expect(releaseLegalHold(db, ownerTenant, hold.holdId)).rejects.toMatchObject({ code: Code.NotFound });
  }, 60_000);

  it("the scheduled retention deletes exactly the expired sessions without a hold, and reports what it kept", async () => {
    const expired = await newSession(owner);
    const held = await newSession(owner);
    const recent = await newSession(owner);
    const otherExpired = await newSession(other);
    ownerTenant = await tenantOf(expired);
    for (const s of [expired, held, otherExpired]) await age(s, 40);
    const heldMessages = await messages(held);
    expect(heldMessages).toBeGreaterThan(0);
    const hold = await placeLegalHold(db, { tenantId: ownerTenant, scope: "session", subjectId: held, reason: "case 7" });
    // Only the owner's tenant has a policy; the other tenant's old session stays.
    await setRetentionPolicy(db, { tenantId: ownerTenant, category: "sessions", maxAgeDays: 30, action: "delete" });

    const report = await eventually("the retention task to report on agent.sessions", async () =>
      (await listRetentionReports(db, ownerTenant)).find((r) => r.target === "agent.sessions"),
    );
    expect(report).toMatchObject({ category: "sessions", action: "delete", expired: 2, removed: 1, held: 1, heldBy: [hold.holdId] });
    expect(report.skippedReason).toContain("legal hold");

    await expect(owner.agent.getSession({ sessionId: expired })).rejects.toMatchObject({ code: Code.NotFound });
    expect(await messages(expired)).toBe(0);
    expect((await owner.agent.getSession({ sessionId: held })).messages.length).toBe(heldMessages);
    expect(await messages(held)).toBe(heldMessages);
    expect((await owner.agent.getSession({ sessionId: recent })).session?.id).toBe(recent);
    expect((await other.agent.getSession({ sessionId: otherExpired })).session?.id).toBe(otherExpired);

    // Once the hold is released the next run removes the session too.
    await releaseLegalHold(db, ownerTenant, hold.holdId);
    await eventually("the released session to expire", async () => (await tenantOf(held)) === "");
    expect(await messages(held)).toBe(0);
    expect(await tenantOf(recent)).toBe(ownerTenant);

    // Retention never touches the audit trail: both tenants' chains still verify.
    for (const client of [owner, other]) {
      const verified = await client.audit.verifyAuditChain({});
      expect(verified.ok).toBe(true);
      expect(verified.entriesChecked).toBeGreaterThan(0n);
    }
  }, 90_000);

  it("a tenant hold stops retention for the whole tenant and the report says why", async () => {
    const s = await newSession(other);
    await age(s, 40);
    const hold = await placeLegalHold(db, { tenantId: otherTenant, scope: "tenant", reason: "regulator" });
    await setRetentionPolicy(db, { tenantId: otherTenant, category: "sessions", maxAgeDays: 30, action: "delete" });
    const report = await eventually("a report for the held tenant", async () =>
      (await listRetentionReports(db, otherTenant)).find((r) => r.target === "agent.sessions"),
    );
    expect(report.removed).toBe(0);
    expect(report.held).toBe(report.expired);
    expect(report.skippedReason).toContain(hold.holdId);
    expect(await tenantOf(s)).toBe(otherTenant);
    await releaseLegalHold(db, otherTenant, hold.holdId);
  }, 60_000);

  it("an anonymize policy empties the expired session's title and message texts and keeps the rows", async () => {
    const t = await mesh.newTenant("pro");
    const client = mesh.client(t.key);
    await ingestCorpus(client, "handbook", [
      { id: "hb-keys", text: "Rotate an API key with RotateApiKey; the old key keeps working for a grace period." },
    ]);
    const s = await newSession(client);
    await age(s, 40);
    const before = await messages(s);
    await setRetentionPolicy(db, { tenantId: t.tenantId, category: "sessions", maxAgeDays: 30, action: "anonymize" });
    const report = await eventually("the anonymize report", async () =>
      (await listRetentionReports(db, t.tenantId)).find((r) => r.target === "agent.messages"),
    );
    expect(report).toMatchObject({ action: "anonymize", expired: before, removed: before, held: 0 });
    const got = await client.agent.getSession({ sessionId: s });
    expect(got.session?.title).toBe("");
    expect(got.messages.length).toBe(before);
    expect(got.messages.every((m) => m.text === "" && m.citations.length === 0)).toBe(true);
    // Later runs do not anonymize (nor report) the same rows again.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await listRetentionReports(db, t.tenantId)).filter((r) => r.target === "agent.messages")).toHaveLength(1);
  }, 60_000);

  it("refuses DeleteDocument and DeleteCorpus while a hold covers the document, and lets them through once released", async () => {
    await ingestCorpus(owner, "evidence", [{ id: "ev-1", text: "The contract was signed on the first of May." }]);
    const doc = await db.query<{ tenant_id: string }>("SELECT tenant_id FROM retrieval.chunks WHERE document_id = 'ev-1' LIMIT 1");
    const tenantId = doc.rows[0]?.tenant_id ?? "";
    expect(tenantId).not.toBe("");
    const hold = await placeLegalHold(db, { tenantId, scope: "document", subjectId: "ev-1", reason: "case 9" });
    const refusedDoc = await owner.ingestion.deleteDocument({ documentId: "ev-1" }).catch((e: unknown) => e);
    expect(errorReason(refusedDoc)).toBe("LEGAL_HOLD_ACTIVE");
    expect(refusedDoc).toMatchObject({ code: Code.FailedPrecondition });
    const refusedCorpus = await owner.retrieval.deleteCorpus({ corpusId: "evidence", force: true }).catch((e: unknown) => e);
    expect(errorReason(refusedCorpus)).toBe("LEGAL_HOLD_ACTIVE");
    expect((await owner.ingestion.getDocument({ documentId: "ev-1" })).document?.status).toBeDefined();
    await releaseLegalHold(db, tenantId, hold.holdId);
    await owner.ingestion.deleteDocument({ documentId: "ev-1" });
    await eventually(
      "the document to be gone",
      async () =>
        await owner.ingestion.getDocument({ documentId: "ev-1" }).then(
          () => false,
          (e: unknown) => (e as { code?: Code }).code === Code.NotFound,
        ),
    );
    await owner.retrieval.deleteCorpus({ corpusId: "evidence", force: true });
  }, 60_000);

  it("an operator places, lists and releases holds and sets policies with the CLI", async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [NEXUS_BIN, "governance", ...args], { env: { ...process.env, DATABASE_URL: mesh.databaseUrl } });
    const sessionId = await newSession(owner);
    const tenantId = await tenantOf(sessionId);
    const placed = JSON.parse(
      (await cli("hold", "place", "--tenant", tenantId, "--scope", "session", "--subject", sessionId, "--reason", "cli", "--json")).stdout,
    ) as {
      holdId: string;
    };
    expect(errorReason(await owner.agent.deleteSession({ sessionId }).catch((e: unknown) => e))).toBe("LEGAL_HOLD_ACTIVE");
    expect((await cli("holds", "--tenant", tenantId)).stdout).toContain(placed.holdId);
    await cli("hold", "release", "--tenant", tenantId, "--hold", placed.holdId, "--by", "counsel");
    await owner.agent.deleteSession({ sessionId });
    // The CLI's changes are in the audit trail too, under the operator's name.
    await eventually("the CLI's release in the audit trail", async () => {
      const { rows } = await db.query<{ actor_key_id: string }>(
        "SELECT actor_key_id FROM audit.entries WHERE tenant_id = $1 AND event_type = 'governance.legal_hold.released' AND resource_id = $2",
        [tenantId, placed.holdId],
      );
      return rows[0]?.actor_key_id === "cli:counsel";
    });

    await cli("retention", "set", "--tenant", tenantId, "--category", "sessions", "--max-age-days", "400");
    const policies = JSON.parse((await cli("retention", "list", "--tenant", tenantId, "--json")).stdout) as unknown[];
    expect(policies).toEqual([{ tenantId, category: "sessions", maxAgeDays: 400, action: "delete" }]);
    // A category that does not exist, and a missing subject, fail with a message that says why.
    const audit = await cli("retention", "set", "--tenant", tenantId, "--category", "backups", "--max-age-days", "30").catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect(audit).toMatchObject({ code: 1 });
    expect((audit as { stderr: string }).stderr).toContain("sessions, documents, audit, usage");
    const usage = await cli("hold", "place", "--tenant", tenantId, "--scope", "document").catch((e: { code: number; stderr: string }) => e);
    expect(usage).toMatchObject({ code: 2 });
    expect((usage as { stderr: string }).stderr).toContain("--subject");
  }, 60_000);

  it("admins place, list and release holds and set policies by RPC; a key hold covers the key's sessions; each change is audited", async () => {
    const t = await mesh.newTenant("pro", "admin");
    const admin = mesh.client(t.key);
    await ingestCorpus(admin, "handbook", [
      { id: "hb-keys", text: "Rotate an API key with RotateApiKey; the old key keeps working for a grace period." },
    ]);
    const me = await admin.auth.whoAmI({});
    const keyId = me.principal?.keyId ?? "";
    expect(keyId).not.toBe("");
    const old = await newSession(admin);
    await age(old, 40);
    // A hold on the key that started the session: DeleteSession is refused naming the hold.
    const { hold } = await admin.governance.placeLegalHold({ scope: HoldScope.KEY, subjectId: keyId, reason: "case 77" });
    expect(hold).toMatchObject({ tenantId: t.tenantId, scope: HoldScope.KEY, subjectId: keyId, placedBy: keyId });
    const refused = await admin.agent.deleteSession({ sessionId: old }).catch((e: unknown) => e);
    expect(errorReason(refused)).toBe("LEGAL_HOLD_ACTIVE");
    expect(String((refused as Error).message)).toContain(hold!.holdId);
    // Retention keeps the key's expired session and its messages, and the report names the hold.
    const { policy } = await admin.governance.setRetentionPolicy({
      category: RetentionCategory.SESSIONS,
      maxAgeDays: 30,
      action: RetentionAction.DELETE,
    });
    expect(policy).toMatchObject({ tenantId: t.tenantId, maxAgeDays: 30, action: RetentionAction.DELETE });
    const report = await eventually("a report naming the key hold", async () =>
      (await admin.governance.listRetentionReports({})).reports.find((r) => r.target === "agent.sessions"),
    );
    expect(report).toMatchObject({ expired: 1, removed: 0, held: 1, heldBy: [hold!.holdId] });
    expect((await admin.agent.getSession({ sessionId: old })).session?.id).toBe(old);
    expect((await admin.governance.listLegalHolds({})).holds.map((h) => h.holdId)).toEqual([hold!.holdId]);
    expect((await admin.governance.listRetentionPolicies({})).policies).toHaveLength(1);
    // Released: the next run removes the session.
    const released = await admin.governance.releaseLegalHold({ holdId: hold!.holdId });
    expect(released.hold?.releasedBy).toBe(keyId);
    expect((await admin.governance.listLegalHolds({})).holds).toEqual([]);
    expect((await admin.governance.listLegalHolds({ includeReleased: true })).holds).toHaveLength(1);
    await eventually("the released session to expire", async () => (await tenantOf(old)) === "");
    // Clear errors: a second release, a subject missing, a category nothing applies yet, another tenant's id.
    expect(await admin.governance.releaseLegalHold({ holdId: hold!.holdId }).catch((e: unknown) => e)).toMatchObject({
      code: Code.NotFound,
    });
    expect(await admin.governance.placeLegalHold({ scope: HoldScope.USER }).catch((e: unknown) => e)).toMatchObject({
      code: Code.InvalidArgument,
    });
    const zero = await admin.governance.setRetentionPolicy({ category: RetentionCategory.AUDIT, maxAgeDays: 0 }).catch((e: unknown) => e);
    expect(zero).toMatchObject({ code: Code.InvalidArgument });
    expect(await admin.governance.listLegalHolds({ tenantId: otherTenant }).catch((e: unknown) => e)).toMatchObject({
      code: Code.PermissionDenied,
    });
    await admin.governance.clearRetentionPolicy({ category: RetentionCategory.SESSIONS });
    // An editor may not govern.
    const editor = await mesh.client(mesh.platformKey).auth.createApiKey({ tenantId: t.tenantId, name: "editor", role: Role.EDITOR });
    expect(
      await mesh
        .client(editor.plaintextKey)
        .governance.placeLegalHold({ scope: HoldScope.TENANT })
        .catch((e: unknown) => e),
    ).toMatchObject({ code: Code.PermissionDenied });
    // Every change is in the tenant's audit trail, by the admin's key, and the chain verifies.
    const types = await eventually("the governance audit entries", async () => {
      const { events } = await admin.audit.listAuditEvents({
        filter: {
          eventTypes: [
            "governance.legal_hold.placed",
            "governance.legal_hold.released",
            "governance.retention_policy.set",
            "governance.retention_policy.cleared",
          ],
        },
      });
      return events.length === 4 ? events : undefined;
    });
    expect(types.map((e) => e.eventType).sort()).toEqual([
      "governance.legal_hold.placed",
      "governance.legal_hold.released",
      "governance.retention_policy.cleared",
      "governance.retention_policy.set",
    ]);
    expect(types.every((e) => e.actor?.keyId === keyId)).toBe(true);
    expect((await admin.audit.verifyAuditChain({})).ok).toBe(true);
  }, 90_000);

  it("audit retention cuts the chain behind a signed checkpoint that keeps it verifiable, and stops before entries a hold covers", async () => {
    const t = await mesh.newTenant("pro", "admin");
    const admin = mesh.client(t.key);
    const platform = mesh.client(mesh.platformKey);
    const editor = await platform.auth.createApiKey({ tenantId: t.tenantId, name: "held editor", role: Role.EDITOR });
    const heldKey = editor.apiKey?.id ?? "";
    await ingestCorpus(admin, "handbook", [
      { id: "hb-keys", text: "Rotate an API key with RotateApiKey; the old key keeps working for a grace period." },
    ]);
    await newSession(admin);
    const entries = async () =>
      (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit.entries WHERE tenant_id = $1", [t.tenantId])).rows[0]!.n;
    await eventually("the admin's activity in the audit trail", async () => (await entries()) >= 4);
    await admin.governance.setRetentionPolicy({ category: RetentionCategory.AUDIT, maxAgeDays: 1 });
    await eventually("the policy change in the audit trail", async () => {
      const { events } = await admin.audit.listAuditEvents({ filter: { eventTypes: ["governance.retention_policy.set"] } });
      return events.length === 1;
    });
    const keyring = createKeyring({ db, masterKeys: parseMasterKeys(process.env.NEXUS_MASTER_KEYS ?? "", "vitest.config.ts") });
    const inTwoDays = () => new Date(Date.now() + 2 * 86_400_000);
    // The mesh's own retention task may hold the tenant's lease for a moment: retry until this run gets it.
    const only = () =>
      eventually("a retention run of the tenant's audit trail", async () => {
        const reports = (await runRetention(db, [auditRetention(keyring)], inTwoDays)).filter((r) => r.tenantId === t.tenantId);
        return reports.length > 0 ? reports : undefined;
      });
    // Everything is "older than a day" two days from now: all but the chain's head goes.
    // The trail is written asynchronously: wait until it stops growing.
    await eventually("the trail to settle", async () => {
      const a = await entries();
      await new Promise((r) => setTimeout(r, 1000));
      return a === (await entries());
    });
    const before = await entries();
    const [first] = await only();
    expect(first).toMatchObject({ target: "audit.entries", expired: before, removed: before - 1, held: 1 });
    expect(await entries()).toBe(1);
    const cp = await db.query<{ sequence: string; entries_removed: number; signature: string; event_types: Record<string, number> }>(
      "SELECT sequence::text, entries_removed, signature, event_types FROM audit.checkpoints WHERE tenant_id = $1",
      [t.tenantId],
    );
    expect(cp.rows).toHaveLength(1);
    expect(cp.rows[0]).toMatchObject({ sequence: String(before - 1), entries_removed: before - 1 });
    expect(cp.rows[0]!.signature).toMatch(/^nxk1\./);
    expect(cp.rows[0]!.event_types["run.invoked"]).toBe(1);
    // The kept chain verifies from the checkpoint, and new entries chain on.
    expect(await admin.audit.verifyAuditChain({})).toMatchObject({ ok: true, entriesChecked: 1n });
    // The held key acts; a hold on it is placed: the next cut stops before its first entry.
    await newSession(mesh.client(editor.plaintextKey));
    const { hold } = await admin.governance.placeLegalHold({ scope: HoldScope.KEY, subjectId: heldKey, reason: "case 5" });
    await eventually("the hold and the run in the audit trail", async () => {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM audit.entries WHERE tenant_id = $1 AND event_type IN ('run.invoked', 'governance.legal_hold.placed')",
        [t.tenantId],
      );
      return rows[0]!.n === 2;
    });
    const [second] = await only();
    expect(second!.heldBy).toEqual([hold!.holdId]);
    expect(second!.skippedReason).toContain(hold!.holdId);
    const kept = await db.query<{ actor_key_id: string; event_type: string }>(
      "SELECT actor_key_id, event_type FROM audit.entries WHERE tenant_id = $1 ORDER BY sequence LIMIT 1",
      [t.tenantId],
    );
    expect(kept.rows[0]).toMatchObject({ actor_key_id: heldKey, event_type: "run.invoked" });
    expect((await admin.audit.verifyAuditChain({})).ok).toBe(true);
    // Entries are still append-only outside retention, and a forged checkpoint breaks the verification.
    await expect(db.query("DELETE FROM audit.entries WHERE tenant_id = $1", [t.tenantId])).rejects.toThrow(/append-only/);
    const latest = await db.query<{ sequence: string; signature: string }>(
      "SELECT sequence::text, signature FROM audit.checkpoints WHERE tenant_id = $1 ORDER BY sequence DESC LIMIT 1",
      [t.tenantId],
    );
    await db.query("UPDATE audit.checkpoints SET entries_removed = entries_removed + 1 WHERE tenant_id = $1 AND sequence = $2", [
      t.tenantId,
      latest.rows[0]!.sequence,
    ]);
    expect((await admin.audit.verifyAuditChain({})).ok).toBe(false);
    await db.query("UPDATE audit.checkpoints SET entries_removed = entries_removed - 1 WHERE tenant_id = $1 AND sequence = $2", [
      t.tenantId,
      latest.rows[0]!.sequence,
    ]);
    expect((await admin.audit.verifyAuditChain({})).ok).toBe(true);
    await admin.governance.releaseLegalHold({ holdId: hold!.holdId });
  }, 120_000);

  it("documents and usage retention delete what expired through their owners, keeping what a key hold covers", async () => {
    const t = await mesh.newTenant("pro", "admin");
    const admin = mesh.client(t.key);
    const platform = mesh.client(mesh.platformKey);
    const editor = await platform.auth.createApiKey({ tenantId: t.tenantId, name: "held uploader", role: Role.EDITOR });
    const heldKey = editor.apiKey?.id ?? "";
    await ingestCorpus(admin, "handbook", [{ id: "old-admin", text: "An old circular about the pelican ledger." }]);
    const uploader = mesh.client(editor.plaintextKey);
    await uploader.ingestion.ingestText({ corpusId: "handbook", documentId: "old-held", text: "A held memo.", mediaType: "text/plain" });
    await eventually(
      "the held memo to be ingested",
      async () => (await uploader.ingestion.getDocument({ documentId: "old-held" })).document?.chunkCount,
    );
    await newSession(admin);
    await newSession(uploader, "What does the held memo say?");
    await eventually("two usage records", async () => {
      const { rows } = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM metering.usage_records WHERE tenant_id = $1", [
        t.tenantId,
      ]);
      return rows[0]!.n === 2;
    });
    await db.query("UPDATE ingestion.documents SET created_at = now() - interval '40 days' WHERE tenant_id = $1", [t.tenantId]);
    await db.query("UPDATE metering.usage_records SET recorded_at = now() - interval '40 days' WHERE tenant_id = $1", [t.tenantId]);
    const { hold } = await admin.governance.placeLegalHold({ scope: HoldScope.KEY, subjectId: heldKey, reason: "case 6" });
    // DeleteDocument of the held key's upload is refused too.
    expect(errorReason(await admin.ingestion.deleteDocument({ documentId: "old-held" }).catch((e: unknown) => e))).toBe(
      "LEGAL_HOLD_ACTIVE",
    );
    await admin.governance.setRetentionPolicy({ category: RetentionCategory.DOCUMENTS, maxAgeDays: 30 });
    await admin.governance.setRetentionPolicy({ category: RetentionCategory.USAGE, maxAgeDays: 30 });
    // The task runs every second, so a run can fall between the two SetRetentionPolicy calls:
    // then the documents policy has two reports, the first run's (what expired) and the next
    // run's (what the hold still keeps). Reports come newest first; the oldest is the first run.
    const reports = await eventually("documents and usage reports", async () => {
      const { reports } = await admin.governance.listRetentionReports({});
      const docs = reports.filter((r) => r.target === "ingestion.documents");
      const usage = reports.filter((r) => r.target === "metering.usage_records");
      return docs.length > 0 && usage.length > 0 ? { docs, usage } : undefined;
    });
    for (const target of [reports.docs, reports.usage]) {
      expect(target.at(-1)).toMatchObject({ expired: 2, removed: 1, held: 1, heldBy: [hold!.holdId] });
      for (const later of target.slice(0, -1)) expect(later).toMatchObject({ expired: 1, removed: 0, held: 1, heldBy: [hold!.holdId] });
    }
    await eventually(
      "the admin's old document to be deleted",
      async () =>
        await admin.ingestion.getDocument({ documentId: "old-admin" }).then(
          () => false,
          (e: unknown) => (e as { code?: Code }).code === Code.NotFound,
        ),
    );
    expect((await admin.ingestion.getDocument({ documentId: "old-held" })).document?.id).toBe("old-held");
    await admin.governance.releaseLegalHold({ holdId: hold!.holdId });
    await admin.governance.clearRetentionPolicy({ category: RetentionCategory.DOCUMENTS });
    await admin.governance.clearRetentionPolicy({ category: RetentionCategory.USAGE });
  }, 120_000);

  it("the hold check is one call: names the hold, ignores released holds and other tenants", async () => {
    await expect(assertNoLegalHold(db, "tenant-x", [{ scope: "document", id: "d1" }], "delete document d1")).resolves.toBeUndefined();
    const h = await placeLegalHold(db, { tenantId: "tenant-x", scope: "document", subjectId: "d1" });
    const err = await assertNoLegalHold(db, "tenant-x", [{ scope: "document", id: "d1" }], "delete document d1").catch((e: unknown) => e);
    expect(errorReason(err)).toBe("LEGAL_HOLD_ACTIVE");
    expect(String((err as Error).message)).toContain("delete document d1");
    await expect(assertNoLegalHold(db, "tenant-y", [{ scope: "document", id: "d1" }], "x")).resolves.toBeUndefined();
    await expect(assertNoLegalHold(db, "tenant-x", [{ scope: "session", id: "d1" }], "x")).resolves.toBeUndefined();
    expect((await activeLegalHolds(db, "tenant-x", [{ scope: "document", id: "d1" }])).map((x) => x.holdId)).toEqual([h.holdId]);
    await expect(placeLegalHold(db, { tenantId: "tenant-x", scope: "user" })).rejects.toMatchObject({ code: Code.InvalidArgument });
    await expect(
      setRetentionPolicy(db, { tenantId: "tenant-x", category: "sessions", maxAgeDays: 0, action: "delete" }),
    ).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });
});
