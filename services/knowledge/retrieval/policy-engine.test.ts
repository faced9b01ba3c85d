import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPgliteDatabase } from "../../kernel/db/pglite-database.js";
import type { Database } from "../../kernel/db/ports.js";
import {
  compilePolicies,
  decideAccess,
  evaluate,
  type LabelRule,
  type PolicyPrincipal,
  type PolicyResource,
  type StoredPolicy,
  validatePolicy,
} from "./policy-engine.js";

const RULES: LabelRule[] = [
  { key: "sensitivity", allowedValues: ["public", "internal", "secret"] },
  { key: "region", allowedValues: [] },
];

const policy = (policyId: string, text: string): StoredPolicy => ({
  policyId,
  version: 1,
  text,
  description: "",
  enabled: true,
  updatedAt: new Date(0),
});

/** Policies of the forms the compiler covers, and two it leaves to Cedar. */
const POLICIES = [
  policy(
    "no-secret",
    `forbid(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "secret" } unless { principal in Group::"legal" || principal.role == "owner" };`,
  ),
  policy(
    "eu-only",
    `forbid(principal, action == Action::"Search", resource) when { resource.labels has region && resource.labels.region != "eu" } unless { principal in Group::"global" };`,
  ),
  policy("archive", `forbid(principal is ApiKey, action in [Action::"Search", Action::"Run"], resource in Corpus::"archive");`),
  policy("mine", `permit(principal, action, resource) when { resource.owner == principal.userId };`),
  policy(
    "public",
    `permit(principal, action, resource) when { resource.labels has sensitivity && resource.labels.sensitivity == "public" };`,
  ),
  policy(
    "not-run",
    `forbid(principal, action == Action::"Run", resource) when { resource.corpus == "drafts" || (resource.labels has region && resource.labels.region == "us-east") } unless { !(principal.role != "owner") };`,
  ),
  policy("bob", `permit(principal == User::"bob", action, resource == Document::"d3");`),
  policy("no-region-drafts", `permit(principal, action, resource) when { !(resource.labels has region) && resource.corpus == "drafts" };`),
  policy(
    "region-or",
    `forbid(principal, action == Action::"Read", resource) when { (resource.labels has region && resource.labels.region == "eu") || principal.role == "viewer" } unless { resource.labels has sensitivity && !(resource.labels.sensitivity != "internal") };`,
  ),
];
const RESIDUAL = [
  policy("like", `forbid(principal, action, resource) when { resource.labels has region && resource.labels.region like "us-*" };`),
  policy("ite", `permit(principal, action, resource) when { if principal.role == "admin" then true else resource.corpus == "kb" };`),
];

const DOCS: PolicyResource[] = [
  { documentId: "d1", labels: { sensitivity: "secret", region: "eu" }, corpusId: "kb", ownerUserId: "" },
  { documentId: "d2", labels: { sensitivity: "public" }, corpusId: "kb", ownerUserId: "alice" },
  { documentId: "d3", labels: { region: "us-east" }, corpusId: "archive", ownerUserId: "bob" },
  { documentId: "d4", labels: {}, corpusId: "drafts", ownerUserId: "" },
  { documentId: "d5", labels: { sensitivity: "internal", region: "eu" }, corpusId: "drafts", ownerUserId: "alice" },
  // Metadata that is not a string is no label (Cedar sees only `region` here).
  { documentId: "d6", labels: { region: "eu" }, corpusId: "kb", ownerUserId: "" },
];
const METADATA: Record<string, object> = { d6: { sensitivity: 3, region: "eu" } };

const PRINCIPALS: PolicyPrincipal[] = [
  { userId: "alice", keyId: "user:alice", role: "editor", groups: ["legal"] },
  { userId: "bob", keyId: "user:bob", role: "viewer", groups: ["global"] },
  { userId: "", keyId: "key-1", role: "owner", groups: [] },
  { userId: "carol", keyId: "user:carol", role: "admin", groups: ["global", "legal"] },
];

describe("Cedar policies", () => {
  let db: Database;
  beforeAll(async () => {
    db = await createPgliteDatabase();
    await db.exec(`CREATE SCHEMA retrieval; CREATE TABLE retrieval.document_access (tenant_id text, document_id text, owner_user_id text);
      CREATE TABLE docs (document_id text, corpus_id text, metadata jsonb);`);
    for (const d of DOCS) {
      await db.query("INSERT INTO docs VALUES ($1, $2, $3::jsonb)", [
        d.documentId,
        d.corpusId,
        JSON.stringify(METADATA[d.documentId] ?? d.labels),
      ]);
      if (d.ownerUserId) await db.query("INSERT INTO retrieval.document_access VALUES ('t', $1, $2)", [d.documentId, d.ownerUserId]);
    }
  });
  afterAll(async () => db?.close());

  it("validates policies against the tenant's schema, with the validator's messages", () => {
    for (const p of [...POLICIES, ...RESIDUAL]) expect(validatePolicy(p.policyId, p.text, RULES), p.policyId).toEqual([]);
    expect(validatePolicy("x", `permit(principal, action, resource) when { resource.labels.colour == "red" };`, RULES).join()).toMatch(
      /labels.colour/,
    );
    expect(validatePolicy("x", `permit(principal, action == Action::"Delete", resource);`, RULES).join()).toMatch(/Delete/);
    expect(validatePolicy("x", `permit(principal, action, resource) when { resource.owner == 3 };`, RULES).join()).toMatch(/type/i);
    expect(validatePolicy("x", "permit(principal, action, resource) when { x };", RULES).join()).toMatch(/invalid variable/);
    expect(validatePolicy("x", "permit(principal, action, resource); forbid(principal, action, resource);", RULES)).toEqual([
      "the text must hold exactly one policy, it holds 2",
    ]);
  });

  it("compiles the common forms to SQL that decides every document as Cedar does, and leaves the rest to Cedar", async () => {
    for (const p of PRINCIPALS) {
      for (const actions of [["Search"], ["Search", "Run"], ["Read"]] as const) {
        const params: unknown[] = ["t"];
        const param = (v: unknown) => `$${params.push(v)}`;
        const compiled = compilePolicies([...POLICIES, ...RESIDUAL], p, actions, param);
        expect(compiled.residual.map((r) => r.policyId).sort()).toEqual(["ite", "like"]);
        expect(compiled.residualPermit).toBe(true);
        const forbid = compiled.forbids.map((f) => f.sql).join(" OR ") || "false";
        const permit = compiled.permits.map((f) => f.sql).join(" OR ") || "false";
        const { rows } = await db.query<{ document_id: string; forbidden: boolean; permitted: boolean }>(
          `SELECT c.document_id, (${forbid}) AS forbidden, (${permit}) AS permitted FROM docs c ORDER BY c.document_id`,
          params,
        );
        for (const row of rows) {
          const doc = DOCS.find((d) => d.documentId === row.document_id)!;
          const answers = actions.map((a) => evaluate(POLICIES, p, a, doc));
          const cedarForbids = answers.some((a) => !a.allowed && a.reasons.length > 0);
          const cedarPermits = answers.every((a) => a.allowed);
          const where = `${p.keyId} ${actions.join("+")} ${doc.documentId}`;
          expect(row.forbidden, where).toBe(cedarForbids);
          if (!cedarForbids) expect(row.permitted, where).toBe(cedarPermits);
        }
      }
    }
  });

  it("decides in order: access list, forbids, permits, then the tenant's default", () => {
    const alice = PRINCIPALS[0]!;
    const d1 = DOCS[0]!;
    const base = { policies: POLICIES, principal: alice, actions: ["Search"] as const, defaultDeny: true };
    expect(decideAccess({ ...base, acl: { allowed: false, explicit: false, rule: "restricted" }, resource: d1 })).toMatchObject({
      allowed: false,
      rule: "acl: restricted",
    });
    // d1 is secret but alice is in legal; it is not in the eu? it is: eu-only does not apply. No permit: default deny.
    expect(decideAccess({ ...base, acl: { allowed: true, explicit: false, rule: "" }, resource: d1 })).toMatchObject({
      allowed: false,
      rule: "default deny: no grant or permit policy allows",
    });
    expect(decideAccess({ ...base, acl: { allowed: true, explicit: true, rule: "" }, resource: d1 })).toMatchObject({
      allowed: true,
      rule: "acl: grant",
    });
    const bob = PRINCIPALS[1]!;
    expect(decideAccess({ ...base, principal: bob, acl: { allowed: true, explicit: true, rule: "" }, resource: d1 })).toMatchObject({
      allowed: false,
      rule: "policy",
      policyIds: ["no-secret"],
    });
    expect(decideAccess({ ...base, acl: { allowed: true, explicit: false, rule: "" }, resource: DOCS[4]! })).toMatchObject({
      allowed: true,
      rule: "policy",
      policyIds: ["mine"],
    });
  });
});
