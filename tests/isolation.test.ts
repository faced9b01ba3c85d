/**
 * Isolation suite: tenant B's owner key against tenant A's resources, for every RPC of every
 * service, enumerated from the generated service descriptors (an RPC added later is covered
 * with no change here). Tenant A owns a corpus, an ingested document, a session and its run,
 * a quota reservation and an extra API key, each carrying a secret marker in its names and
 * text; B calls every RPC twice — naming A's tenant, and naming only A's resource ids — over
 * `nexus dev` as a client would.
 *
 * Every call naming A's tenant is NOT_FOUND or PERMISSION_DENIED. A call naming only A's ids
 * is NOT_FOUND or PERMISSION_DENIED, or acts in B's own tenant (B may create its own corpus
 * with the same client-chosen id): whatever succeeds never shows A's data (no response
 * carries A's tenant id or a marker), lists show only B's, and afterwards every resource of A
 * is exactly as it was.
 */
import { create, type DescField, type DescMessage, type DescMethod, type DescService, toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Role } from "../gen/nexus/auth/v1/api_key_pb.js";
import { DocumentStatus } from "../gen/nexus/ingestion/v1/document_pb.js";
import { NEXUS_SERVICES } from "../services/kernel/authz/all-services.js";
import { PERMISSIONS, procedureOf } from "../services/kernel/authz/permissions.js";
import { errorReason } from "../services/kernel/errors.js";
import { type AgentMesh, ingestCorpus, startAgentMesh } from "./support/agent-mesh.js";
import { describeWithPostgres } from "./support/services.js";

const rpcs = NEXUS_SERVICES.flatMap((service) =>
  service.methods.map((method) => ({ service, method, procedure: procedureOf(service.typeName, method.name) })),
);

/** What B may get back for A's resources. */
const REFUSED = new Set([Code.NotFound, Code.PermissionDenied]);

/** A's resources, by the request field names that refer to them. */
interface TenantA {
  tenantId: string;
  key: string;
  /** In A's content only (names, descriptions, text) — never in an id B sends, so never echoed. */
  secret: string;
  ids: Record<string, string>;
}

/** Sets every field (nested messages included, up to a depth) whose name refers to one of A's resources. */
function requestNaming(desc: DescMessage, ids: Readonly<Record<string, string>>, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of desc.fields) {
    const value = valueFor(field, ids, depth);
    if (value === undefined) continue;
    if (field.oneof) out[field.oneof.localName] = { case: field.localName, value };
    else out[field.localName] = value;
  }
  // Fields RPCs require to get past validation to the lookup: plausible values of B's own.
  const plausible: Record<string, string> = {
    message: "what is in the handbook?",
    text: "b's own text",
    query: "handbook",
    display_name: "b's own",
    name: "b's own",
    filename: "b.txt",
    media_type: "text/plain",
  };
  for (const f of desc.fields) {
    if (out[f.localName] !== undefined || f.oneof) continue;
    if (f.fieldKind === "scalar" && plausible[f.name] !== undefined) out[f.localName] = plausible[f.name];
    // The first real value of an enum (a role, a plan…): UNSPECIFIED is refused by validation.
    if (f.fieldKind === "enum") out[f.localName] = f.enum.values.find((v) => v.number !== 0)?.number ?? 0;
  }
  return out;
}

function valueFor(field: DescField, ids: Readonly<Record<string, string>>, depth: number): unknown {
  const id = ids[field.name];
  if (field.fieldKind === "scalar" && id !== undefined) return id;
  if (field.fieldKind === "list" && field.listKind === "scalar" && ids[field.name.replace(/s$/, "")] !== undefined)
    return [ids[field.name.replace(/s$/, "")]];
  if (field.fieldKind === "message" && depth < 2 && !field.message.typeName.startsWith("google.")) {
    const inner = requestNaming(field.message, ids, depth + 1);
    return Object.keys(inner).length > 0 ? inner : undefined;
  }
  return undefined;
}

interface Outcome {
  code: Code | "ok";
  reason?: string | undefined;
  /** Everything the server sent, as JSON text (responses, or the error message). */
  seen: string;
}

/** Calls any RPC generically, whatever its streaming kind, and keeps what came back. */
async function call(transport: Transport, service: DescService, method: DescMethod, init: Record<string, unknown>): Promise<Outcome> {
  const client = createClient(service, transport) as unknown as Record<string, (input: unknown, options?: unknown) => unknown>;
  const fn = client[method.localName]!;
  const request = create(method.input, init as never);
  const seen: string[] = [];
  const show = (m: unknown) => seen.push(toJsonString(method.output, m as never));
  try {
    if (method.methodKind === "unary") show(await (fn(request) as Promise<unknown>));
    else if (method.methodKind === "client_streaming") {
      show(
        await (fn(
          (async function* () {
            yield request;
          })(),
        ) as Promise<unknown>),
      );
    } else {
      const stream = (
        method.methodKind === "server_streaming"
          ? fn(request, { timeoutMs: 5000 })
          : fn(
              (async function* () {
                yield request;
              })(),
            )
      ) as AsyncIterable<unknown>;
      let n = 0;
      for await (const m of stream) {
        show(m);
        if (++n >= 5) break; // a watch stream never ends by itself
      }
    }
    return { code: "ok", seen: seen.join("\n") };
  } catch (err) {
    const ce = ConnectError.from(err);
    // A live tail of B's own (quiet) tenant is still open at the deadline: a running watch, not a refusal.
    if (method.methodKind === "server_streaming" && ce.code === Code.DeadlineExceeded) return { code: "ok", seen: seen.join("\n") };
    return { code: ce.code, reason: errorReason(ce), seen: `${seen.join("\n")}\n${ce.rawMessage}` };
  }
}

describeWithPostgres("isolation: tenant B's key on tenant A's resources, for every RPC", () => {
  let mesh: AgentMesh;
  let a: TenantA;
  let bKey: string;
  let bTenant: string;
  /** A's state before B's calls, to compare after. */
  let before: string;

  /** Everything of A a user could see, as one JSON text (what must not change). */
  async function stateOfA(): Promise<string> {
    const c = mesh.client(a.key);
    const corpus = await c.retrieval.getCorpus({ corpusId: a.ids.corpus_id! });
    const document = await c.ingestion.getDocument({ documentId: a.ids.document_id! });
    const session = await c.agent.getSession({ sessionId: a.ids.session_id! });
    const key = await c.auth.getApiKey({ keyId: a.ids.key_id! });
    const tenant = await c.auth.getTenant({ selector: { case: "tenantId", value: a.tenantId } });
    return JSON.stringify({
      corpus: [corpus.corpus?.displayName, corpus.corpus?.description],
      document: [document.document?.status, document.document?.filename, document.document?.corpusId],
      session: [session.session?.messageCount, session.session?.title],
      key: [key.apiKey?.status, key.apiKey?.role, key.apiKey?.name],
      tenant: [tenant.tenant?.status, tenant.tenant?.plan, tenant.tenant?.displayName],
    });
  }

  beforeAll(async () => {
    mesh = await startAgentMesh({ LOG_LEVEL: "error" });
    const marker = Math.random().toString(36).slice(2, 10);
    const secret = `a-secret-${marker}`;
    const ta = await mesh.newTenant("enterprise", "owner");
    const tb = await mesh.newTenant("enterprise", "owner");
    bKey = tb.key;
    bTenant = tb.tenantId;
    const c = mesh.client(ta.key);
    const corpusId = `handbook-${marker}`;
    await c.retrieval.createCorpus({ corpusId, displayName: `corpus ${secret}`, description: secret });
    await ingestCorpus(c, corpusId, [
      { id: `doc-${marker}`, text: `The handbook of tenant A. ${secret}. Descale the espresso machine weekly.`, filename: `${secret}.txt` },
      { id: `doc2-${marker}`, text: `Second page of A. ${secret}.`, filename: `${secret}-2.txt` },
    ]);
    let requestId = "";
    let sessionId = "";
    for await (const r of c.agent.run({ corpusId, message: `How often is descaling? ${secret}` })) {
      if (r.event.case === "accepted") ({ requestId, sessionId } = r.event.value);
    }
    expect(sessionId).not.toBe("");
    const key = await c.auth.createApiKey({ name: `key ${secret}`, role: Role.VIEWER });
    const reservation = await c.metering.checkQuota({ tenantId: ta.tenantId, requestId: `req-${marker}` });
    const page = await c.ingestion.listDocuments({ corpusId, pageSize: 1 });
    a = {
      tenantId: ta.tenantId,
      key: ta.key,
      secret,
      ids: {
        corpus_id: corpusId,
        document_id: `doc-${marker}`,
        session_id: sessionId,
        request_id: requestId,
        key_id: key.apiKey!.id,
        reservation_id: reservation.reservationId,
        actor_key_id: key.apiKey!.id,
        resource_id: corpusId,
        page_token: page.nextPageToken,
      },
    };
    expect(a.ids.reservation_id).not.toBe("");
    expect(a.ids.page_token).not.toBe("");
    before = await stateOfA();
  }, 120_000);

  afterAll(async () => {
    await mesh?.close();
  });

  it("covers every RPC the descriptors define", () => {
    expect(rpcs.length).toBeGreaterThanOrEqual(47);
  });

  it("naming A's tenant: every RPC is NOT_FOUND or PERMISSION_DENIED", async () => {
    const transport = mesh.client(bKey).transport;
    const wrong: string[] = [];
    for (const { service, method, procedure } of rpcs) {
      if (!method.input.fields.some((f) => f.name === "tenant_id")) continue;
      const o = await call(transport, service, method, requestNaming(method.input, { ...a.ids, tenant_id: a.tenantId }));
      if (o.code === "ok" || !REFUSED.has(o.code)) wrong.push(`${procedure} → ${o.code === "ok" ? "OK" : Code[o.code]} ${o.reason ?? ""}`);
      if (o.seen.includes(a.secret)) wrong.push(`${procedure} showed A's data`);
    }
    expect(wrong).toEqual([]);
  });

  it("naming A's resource ids: refused, or acting on B's own tenant without ever showing A's data", async () => {
    const transport = mesh.client(bKey).transport;
    const wrong: string[] = [];
    const outcomes: Record<string, string> = {};
    /** What each call sent back, for the checks after the loop. */
    const seenOf: Record<string, string> = {};
    for (const { service, method, procedure } of rpcs) {
      const init = requestNaming(method.input, a.ids);
      const namesA = Object.values(a.ids).some((id) => JSON.stringify(init).includes(id));
      const o = await call(transport, service, method, init);
      outcomes[procedure] = o.code === "ok" ? "OK" : `${Code[o.code]} ${o.reason ?? ""}`;
      // A page token A was issued is not B's to use: refusing it as invalid is fine too; so is a
      // request this generic filler leaves incomplete (CheckQuota needs a tenant, UploadDocument
      // content): shape is checked before anything is looked up, so it reveals nothing. The
      // RPCs that must look A's resource up are held to NOT_FOUND below.
      // An RPC whose credential is not an API key (an edge agent's calls: the edge token) refuses
      // B's key as UNAUTHENTICATED, before looking anything up.
      const notItsCredential = PERMISSIONS[procedure]?.class === "public" && o.code === Code.Unauthenticated;
      const allowed = o.code === "ok" || REFUSED.has(o.code) || o.code === Code.InvalidArgument || notItsCredential;
      if (
        o.code === Code.InvalidArgument &&
        namesA &&
        !["INVALID_CURSOR", "VALIDATION_FAILED", "INVALID_ARGUMENT"].includes(o.reason ?? "")
      ) {
        wrong.push(`${procedure} → ${outcomes[procedure]}`);
      }
      if (!allowed) wrong.push(`${procedure} → ${outcomes[procedure]}`);
      seenOf[procedure] = o.seen;
      if (o.seen.includes(a.secret)) wrong.push(`${procedure} showed A's data: ${o.seen.slice(0, 200)}`);
      if (o.seen.includes(a.tenantId)) wrong.push(`${procedure} showed A's tenant id`);
    }
    expect(wrong, JSON.stringify(outcomes, null, 1)).toEqual([]);
    // The resources only A has are not found for B.
    const outcomeOf = (rpc: string) => outcomes[Object.keys(outcomes).find((p) => p.endsWith(`/${rpc}`))!];
    // (Corpus ids are chosen by the client and scoped by tenant: B's CreateCorpus with A's id
    // made B's own corpus, so the corpus RPCs after it act on B's — checked above to show
    // nothing of A's. Document ids of A's were never created by B.)
    for (const rpc of [
      "GetDocument",
      "WatchDocument",
      "ReindexDocument",
      "DeleteDocument",
      "GetSession",
      "DeleteSession",
      "GetApiKey",
      "RevokeApiKey",
      "RotateApiKey",
      "ReactivateApiKey",
      "SetApiKeyRole",
      "CommitQuota",
      "ReleaseQuota",
    ]) {
      expect(outcomeOf(rpc), rpc).toMatch(/^(NotFound|PermissionDenied)/);
    }
    // CancelRun is idempotent by contract (cancelled: false for a run it does not know), and
    // runs are scoped by tenant: B's cancel of A's run id cancels nothing.
    expect(outcomeOf("CancelRun")).toBe("OK");
    expect(seenOf["/nexus.agent.v1.AgentService/CancelRun"]).not.toContain("cancelled");
  }, 60_000);

  it("lists show only B's own data", async () => {
    const b = mesh.client(bKey);
    const lists = [
      await b.retrieval.listCorpora({}),
      await b.ingestion.listDocuments({}),
      await b.agent.listSessions({}),
      await b.auth.listApiKeys({}),
      await b.audit.listAuditEvents({}),
    ];
    for (const list of lists) {
      const text = JSON.stringify(list, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v));
      expect(text).not.toContain(a.tenantId);
      expect(text).not.toContain(a.secret);
      expect(text).not.toContain(a.ids.document_id!);
      expect(text).not.toContain(a.ids.key_id!);
      expect(text).not.toContain(a.ids.session_id!);
    }
    const me = await b.auth.whoAmI({});
    expect(me.principal?.tenantId).toBe(bTenant);
  });

  it("B trying A's key id with a wrong secret shows in A's audit trail, naming the claimed key", async () => {
    const guessed = `nxs_${a.ids.key_id}_${"A".repeat(43)}`;
    await expect(mesh.client(guessed).retrieval.listCorpora({})).rejects.toThrow(/unauthenticated|API key/i);
    const owner = mesh.client(a.key);
    const end = Date.now() + 15_000;
    for (;;) {
      const page = await owner.audit.listAuditEvents({ filter: { eventTypes: ["auth.access.failure"] } });
      const attempt = page.events.find((e) => e.actor?.keyId === a.ids.key_id);
      if (attempt) {
        expect(attempt.tenantId).toBe(a.tenantId);
        expect(attempt.resource?.id).toBe(a.ids.key_id);
        break;
      }
      if (Date.now() > end) throw new Error(`no auth.access.failure naming ${a.ids.key_id} in A's audit trail`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it("A's resources are exactly as they were, and A still reads them", async () => {
    expect(await stateOfA()).toBe(before);
    const c = mesh.client(a.key);
    const doc = await c.ingestion.getDocument({ documentId: a.ids.document_id! });
    expect(doc.document?.status).toBe(DocumentStatus.SUCCEEDED);
    const hits = await c.retrieval.search({ corpusId: a.ids.corpus_id!, query: "descale espresso" });
    expect(JSON.stringify(hits, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).toContain(a.secret);
  });
});
