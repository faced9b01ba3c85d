import { execFile } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import {
  DataSubjectRequestKind,
  DataSubjectRequestStatus,
  DataSubjectScope,
  HoldScope,
  RetentionAction,
  RetentionCategory,
} from "../gen/nexus/governance/v1/governance_service_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import type { NexusClient } from "../services/client/index.js";
import { errorReason } from "../services/kernel/errors.js";
import type { SubjectArchive } from "../services/kernel/governance/index.js";
import { type AgentMesh, startAgentMesh } from "./support/agent-mesh.js";
import { eventually } from "./support/eventually.js";
import { NEXUS_BIN, tempDir } from "./support/nexus-process.js";
import { describeWithPostgres } from "./support/services.js";

const run = promisify(execFile);

/**
 * Data-subject requests on a real `nexus dev` mesh over PostgreSQL (issue 17): an export of
 * one API key's data holds exactly its sessions, documents, audit entries and usage — nothing
 * of another key of the same tenant — as an archive the keyring signed and the CLI verifies;
 * an erase waits for a second admin when the tenant says so, refuses the requester's own
 * approval and a held subject, and removes exactly the subject's sessions and documents.
 */
describeWithPostgres("data-subject requests (nexus dev on PostgreSQL)", () => {
  let mesh: AgentMesh;
  let tenantId: string;
  let adminA: NexusClient;
  let adminB: NexusClient;
  const subjects: Record<"k1" | "k2", { keyId: string; client: NexusClient; sessions: string[]; doc: string; secret: string }> =
    {} as never;
  let dir: ReturnType<typeof tempDir>;

  const newSession = async (client: NexusClient, corpusId: string, message: string) => {
    let sessionId = "";
    for await (const e of client.agent.run({ corpusId, message })) {
      if (e.event.case === "accepted") sessionId = e.event.value.sessionId;
    }
    return sessionId;
  };
  const finished = (client: NexusClient, requestId: string) =>
    eventually(
      `request ${requestId} to finish`,
      async () => {
        const { request } = await client.governance.getDataSubjectRequest({ requestId });
        return request?.status === DataSubjectRequestStatus.DONE ? request : undefined;
      },
      60_000,
    );

  beforeAll(async () => {
    dir = tempDir("nexus-dsar-");
    mesh = await startAgentMesh({ NEXUS_SUBJECT_REQUEST_INTERVAL_MS: "500" });
    const t = await mesh.newTenant("pro", "admin");
    tenantId = t.tenantId;
    adminA = mesh.client(t.key);
    const platform = mesh.client(mesh.platformKey);
    adminB = mesh.client((await platform.auth.createApiKey({ tenantId, name: "second admin", role: Role.ADMIN })).plaintextKey);
    for (const [name, secret] of [
      ["k1", "kestrel-amber"],
      ["k2", "osprey-violet"],
    ] as const) {
      const issued = await platform.auth.createApiKey({ tenantId, name, role: Role.EDITOR });
      const client = mesh.client(issued.plaintextKey);
      const doc = `${name}-notes`;
      // Corpora are created by admins; the editor keys upload into them.
      await adminA.retrieval.createCorpus({ corpusId: `${name}-corpus`, displayName: name });
      await client.ingestion.ingestText({
        corpusId: `${name}-corpus`,
        documentId: doc,
        text: `The ${name} field notes mention the ${secret} protocol for rotations.`,
        filename: `${doc}.txt`,
        mediaType: "text/plain",
      });
      await eventually(`${doc} to be ingested`, async () => {
        const { document } = await client.ingestion.getDocument({ documentId: doc });
        return document?.status === DocumentStatus.SUCCEEDED;
      });
      const sessions = [
        await newSession(client, `${name}-corpus`, `What does the ${secret} protocol say?`),
        await newSession(client, `${name}-corpus`, `Summarise the ${name} field notes.`),
      ];
      subjects[name] = { keyId: issued.apiKey?.id ?? "", client, sessions, doc, secret };
    }
    // Usage is recorded from the run events by metering; wait until every run has its record.
    await eventually("usage records of the four runs", async () => {
      const { rows } = await mesh.db.query<{ n: number }>("SELECT count(*)::int AS n FROM metering.usage_records WHERE tenant_id = $1", [
        tenantId,
      ]);
      return rows[0]!.n >= 4;
    });
  }, 240_000);
  afterAll(async () => {
    await mesh?.close();
    dir?.remove();
  });

  it("exports exactly one key's data as a signed archive that `nexus governance dsar verify` accepts, and refuses a tampered one", async () => {
    const k1 = subjects.k1;
    const k2 = subjects.k2;
    const { request } = await adminA.governance.createDataSubjectRequest({
      kind: DataSubjectRequestKind.EXPORT,
      scope: DataSubjectScope.KEY,
      subjectId: k1.keyId,
    });
    expect(request?.status).toBe(DataSubjectRequestStatus.RUNNING);
    const done = await finished(adminA, request!.requestId);
    expect(Object.fromEntries(done.parts.map((p) => [p.part, p.items]))).toMatchObject({ sessions: 2, documents: 1 });

    const { archive: bytes } = await adminA.governance.downloadDataSubjectArchive({ requestId: request!.requestId });
    const text = Buffer.from(bytes).toString("utf8");
    const archive = JSON.parse(text) as SubjectArchive;
    const parts = archive.content.parts as Record<string, Array<Record<string, unknown>>>;
    // Sessions: exactly k1's, with the messages' plaintext.
    expect(parts.sessions!.map((s) => s.sessionId).sort()).toEqual([...k1.sessions].sort());
    expect(JSON.stringify(parts.sessions)).toContain(k1.secret);
    // Documents: exactly k1's upload, with its original bytes.
    expect(parts.documents!.map((d) => d.documentId)).toEqual([k1.doc]);
    expect(Buffer.from(String(parts.documents![0]!.contentBase64), "base64").toString()).toContain(k1.secret);
    // Audit: entries naming k1 only (acting as it, or about it), k1's runs among them.
    expect(parts.audit!.length).toBeGreaterThan(0);
    expect(parts.audit!.every((e) => e.actor_key_id === k1.keyId || e.resource_id === k1.keyId)).toBe(true);
    expect(parts.audit!.filter((e) => e.event_type === "run.invoked").map((e) => e.resource_id)).toEqual(
      expect.arrayContaining(k1.sessions),
    );
    // Usage: the records of k1's two runs.
    const runRequests = parts.sessions!.flatMap((s) => (s.messages as Array<{ requestId: string }>).map((m) => m.requestId));
    expect(parts.usage!.length).toBe(2);
    expect(parts.usage!.every((u) => runRequests.includes(String(u.requestId)))).toBe(true);
    // Nothing of the other key: not its id, sessions, document or words.
    for (const other of [k2.keyId, ...k2.sessions, k2.doc, k2.secret]) expect(text).not.toContain(other);

    // The archive verifies with the keyring (the CLI, as an auditor would), and a changed one does not.
    const file = path.join(dir.dir, "export.json");
    writeFileSync(file, text);
    const cli = (f: string) =>
      run(process.execPath, [NEXUS_BIN, "governance", "dsar", "verify", "--file", f], {
        env: { ...process.env, DATABASE_URL: mesh.databaseUrl },
      }).then(
        (r) => ({ code: 0, out: r.stdout }),
        (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
      );
    const ok = await cli(file);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toContain("verified");
    const tampered = path.join(dir.dir, "tampered.json");
    writeFileSync(tampered, text.replace(k1.secret, "nothing-here"));
    const bad = await cli(tampered);
    expect(bad.code).toBe(1);
    expect(bad.out).toContain("NOT VERIFIED");
    // An export of a request not done, or of an erase, is not downloadable.
    await expect(adminA.governance.downloadDataSubjectArchive({ requestId: "no-such-request" })).rejects.toMatchObject({
      code: Code.NotFound,
    });
  }, 120_000);

  it("a user's export covers its owned key and its sign-in session, and nothing of another user of the tenant", async () => {
    // A tenant of its own: two members, each with an API key they own; the first also signed in.
    const t = await mesh.newTenant("pro", "admin");
    const admin = mesh.client(t.key);
    const people: Record<
      "u1" | "u2",
      { userId: string; keyId: string; key: NexusClient; secret: string; docs: string[]; sessions: string[] }
    > = {} as never;
    await admin.retrieval.createCorpus({ corpusId: "people", displayName: "people" });
    const upload = async (client: NexusClient, documentId: string, secret: string) => {
      await client.ingestion.ingestText({
        corpusId: "people",
        documentId,
        text: `Notes of ${documentId}: the ${secret} procedure.`,
        filename: `${documentId}.txt`,
        mediaType: "text/plain",
      });
      await eventually(`${documentId} to be ingested`, async () => {
        const { document } = await client.ingestion.getDocument({ documentId });
        return document?.status === DocumentStatus.SUCCEEDED;
      });
    };
    for (const [name, secret] of [
      ["u1", "heron-cobalt"],
      ["u2", "plover-saffron"],
    ] as const) {
      const member = (await admin.identity.addMember({ email: `${name}@example.com`, role: Role.EDITOR })).member!;
      const issued = await admin.auth.createApiKey({ name: `${name}'s key`, role: Role.EDITOR, ownerUserId: member.userId });
      const key = mesh.client(issued.plaintextKey);
      await upload(key, `${name}-key-doc`, secret);
      people[name] = {
        userId: member.userId,
        keyId: issued.apiKey!.id,
        key,
        secret,
        docs: [`${name}-key-doc`],
        sessions: [await newSession(key, "people", `What is the ${secret} procedure?`)],
      };
    }
    // u1 signs in (the session a completed OpenID sign-in stores) and works with the session token.
    const signInId = randomUUID();
    const token = `nxss_${signInId}_${randomBytes(32).toString("base64url")}`;
    await mesh.db.query(
      `INSERT INTO auth.sessions (id, tenant_id, user_id, groups, secret_sha256, created_at, expires_at, version)
       VALUES ($1, $2, $3, '{}', $4, now(), now() + interval '1 hour', 1)`,
      [signInId, t.tenantId, people.u1.userId, createHash("sha256").update(token).digest()],
    );
    const signedIn = mesh.client(token);
    await upload(signedIn, "u1-session-doc", "heron-cobalt");
    people.u1.docs.push("u1-session-doc");
    people.u1.sessions.push(await newSession(signedIn, "people", "Summarise the heron-cobalt notes."));
    await eventually("usage records of the three runs", async () => {
      const { rows } = await mesh.db.query<{ n: number }>("SELECT count(*)::int AS n FROM metering.usage_records WHERE tenant_id = $1", [
        t.tenantId,
      ]);
      return rows[0]!.n >= 3;
    });

    const { request } = await admin.governance.createDataSubjectRequest({
      kind: DataSubjectRequestKind.EXPORT,
      scope: DataSubjectScope.USER,
      subjectId: people.u1.userId,
    });
    await finished(admin, request!.requestId);
    const text = Buffer.from((await admin.governance.downloadDataSubjectArchive({ requestId: request!.requestId })).archive).toString(
      "utf8",
    );
    const parts = (JSON.parse(text) as SubjectArchive).content.parts as Record<string, Array<Record<string, unknown>>>;
    // Both ways u1 worked: the owned key and the sign-in session.
    expect(parts.sessions!.map((x) => x.sessionId).sort()).toEqual([...people.u1.sessions].sort());
    expect(parts.documents!.map((d) => d.documentId).sort()).toEqual([...people.u1.docs].sort());
    const u1Actors = [people.u1.keyId, `session:${signInId}`, `user:${people.u1.userId}`];
    const runs = parts.audit!.filter((e) => e.event_type === "run.invoked");
    expect(runs.map((e) => e.actor_key_id).sort()).toEqual([people.u1.keyId, `session:${signInId}`].sort());
    expect(
      parts.audit!.every(
        (e) => u1Actors.includes(String(e.actor_key_id)) || [people.u1.userId, people.u1.keyId].includes(String(e.resource_id)),
      ),
    ).toBe(true);
    expect(parts.usage!.length).toBe(2);
    // Nothing of u2: not its user, key, sessions, document or words.
    for (const other of [people.u2.userId, people.u2.keyId, ...people.u2.sessions, ...people.u2.docs, people.u2.secret])
      expect(text).not.toContain(other);
    // Only a FAILED request can be restarted; anonymize is refused where it means nothing.
    await expect(admin.governance.retryDataSubjectRequest({ requestId: request!.requestId })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
    });
    await expect(
      admin.governance.setRetentionPolicy({ category: RetentionCategory.DOCUMENTS, maxAgeDays: 30, action: RetentionAction.ANONYMIZE }),
    ).rejects.toMatchObject({ code: Code.InvalidArgument });
  }, 180_000);

  it("erase needs a second admin when the tenant requires it, respects holds, and removes exactly the subject's data", async () => {
    const k1 = subjects.k1;
    const k2 = subjects.k2;
    await adminA.governance.setGovernanceSettings({ eraseRequiresApproval: true });
    // A hold on the key refuses the request at once.
    const { hold } = await adminA.governance.placeLegalHold({ scope: HoldScope.KEY, subjectId: k2.keyId, reason: "case 12" });
    const held = await adminA.governance
      .createDataSubjectRequest({ kind: DataSubjectRequestKind.ERASE, scope: DataSubjectScope.KEY, subjectId: k2.keyId })
      .catch((e: unknown) => e);
    expect(held).toMatchObject({ code: Code.FailedPrecondition });
    expect(errorReason(held)).toBe("LEGAL_HOLD_ACTIVE");
    await adminA.governance.releaseLegalHold({ holdId: hold!.holdId });

    const { request } = await adminA.governance.createDataSubjectRequest({
      kind: DataSubjectRequestKind.ERASE,
      scope: DataSubjectScope.KEY,
      subjectId: k2.keyId,
    });
    expect(request).toMatchObject({ status: DataSubjectRequestStatus.AWAITING_APPROVAL, approvalRequired: true });
    // Nothing happens while it waits.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await k2.client.agent.getSession({ sessionId: k2.sessions[0]! })).session?.id).toBe(k2.sessions[0]);
    // The requester cannot approve it.
    const self = await adminA.governance.approveDataSubjectRequest({ requestId: request!.requestId }).catch((e: unknown) => e);
    expect(self).toMatchObject({ code: Code.PermissionDenied });
    expect(errorReason(self)).toBe("SELF_APPROVAL_FORBIDDEN");
    expect(String((self as Error).message)).toContain("second admin");
    // An editor may not approve either (admins only).
    await expect(k1.client.governance.approveDataSubjectRequest({ requestId: request!.requestId })).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    const approved = await adminB.governance.approveDataSubjectRequest({ requestId: request!.requestId });
    expect(approved.request?.status).toBe(DataSubjectRequestStatus.RUNNING);
    const done = await finished(adminA, request!.requestId);
    const summary = Object.fromEntries(done.parts.map((p) => [p.part, p]));
    expect(summary.sessions).toMatchObject({ removed: 2, kept: 0 });
    expect(summary.documents).toMatchObject({ removed: 1, kept: 0 });
    expect(summary.audit?.removed).toBe(0);
    expect(summary.audit?.note).toContain("append-only");

    // k2's sessions and document are gone; k1's are all there.
    for (const s of k2.sessions) await expect(adminA.agent.getSession({ sessionId: s })).rejects.toMatchObject({ code: Code.NotFound });
    await eventually(
      "k2's document to be deleted",
      async () =>
        await adminA.ingestion.getDocument({ documentId: k2.doc }).then(
          () => false,
          (e: unknown) => (e as { code?: Code }).code === Code.NotFound,
        ),
    );
    for (const s of k1.sessions) expect((await adminA.agent.getSession({ sessionId: s })).session?.id).toBe(s);
    expect((await adminA.ingestion.getDocument({ documentId: k1.doc })).document?.id).toBe(k1.doc);
    // The requests, their approval and the setting are audited, and the chain still verifies.
    const { events } = await eventually("the subject request audit entries", async () => {
      const r = await adminA.audit.listAuditEvents({
        filter: {
          eventTypes: ["governance.subject_request.created", "governance.subject_request.approved", "governance.subject_request.completed"],
        },
      });
      return r.events.length >= 5 ? r : undefined;
    });
    expect(events.some((e) => e.eventType === "governance.subject_request.approved")).toBe(true);
    const completed = events.find((e) => e.eventType === "governance.subject_request.completed" && e.resource?.id === request!.requestId);
    expect(completed?.after).toMatchObject({ kind: "erase", items: 3 });
    expect((await adminA.audit.verifyAuditChain({})).ok).toBe(true);
    expect((await adminA.governance.listDataSubjectRequests({})).requests.map((r) => r.requestId)).toContain(request!.requestId);
  }, 120_000);
});
