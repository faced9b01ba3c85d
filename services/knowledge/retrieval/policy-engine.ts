import { createRequire } from "node:module";
import type * as Cedar from "@cedar-policy/cedar-wasm/nodejs";

const requireCjs = createRequire(import.meta.url);
let loaded: typeof Cedar | undefined;
/**
 * Cedar's WASM module (CommonJS, instantiated when required: ~14 MiB resident), loaded on first
 * use, so a process whose tenants never save or evaluate a policy does not carry it.
 */
const cedar = (): typeof Cedar => {
  loaded ??= requireCjs("@cedar-policy/cedar-wasm/nodejs") as typeof Cedar;
  return loaded;
};

import type { TenantRole } from "../../kernel/context.js";

/**
 * Cedar policies on documents (docs/identity.md, "Policies"): the tenant's schema, validation
 * when saved, the decision for one document (Cedar itself, `@cedar-policy/cedar-wasm`), and the
 * compilation of the common policy forms into SQL predicates, so Search and ListDocuments filter
 * inside their statements. A policy the compiler does not cover is "residual": decided by Cedar
 * per candidate document after a bounded over-fetch.
 */

/** The actions policies name. */
export const POLICY_ACTIONS = ["Read", "Search", "Run"] as const;
/** One of {@link POLICY_ACTIONS}. */
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** A label policies may reference: `resource.labels.<key>`; `allowedValues` empty = any string. */
export interface LabelRule {
  key: string;
  allowedValues: readonly string[];
}

/** A stored policy. */
export interface StoredPolicy {
  policyId: string;
  version: number;
  text: string;
  description: string;
  enabled: boolean;
  updatedAt: Date;
}

/** Who asks, as policies see them: `User::"<user id>"` for a person, else `ApiKey::"<key id>"`. */
export interface PolicyPrincipal {
  userId: string;
  keyId: string;
  role: TenantRole | string;
  groups: readonly string[];
}

/** A document as policies see it. */
export interface PolicyResource {
  documentId: string;
  labels: Readonly<Record<string, string>>;
  corpusId: string;
  ownerUserId: string;
}

/** The tenant's Cedar schema: principals with role and groups, documents with labels, corpus and owner. */
export function cedarSchema(rules: readonly LabelRule[]): string {
  const labels = rules.map((r) => `${JSON.stringify(r.key)}?: String`).join(", ");
  return `entity Group;
entity User in [Group] { role: String, userId: String };
entity ApiKey in [Group] { role: String, userId: String };
entity Corpus;
entity Document in [Corpus] { labels: { ${labels} }, corpus: String, owner: String };
action Read, Search, Run appliesTo { principal: [User, ApiKey], resource: [Document] };
`;
}

/** The messages of a schema that does not parse (empty: valid). */
export function schemaErrors(rules: readonly LabelRule[]): string[] {
  const answer = cedar().checkParseSchema(cedarSchema(rules));
  return answer.type === "failure" ? answer.errors.map(message) : [];
}

/** The messages of a policy that does not parse or validate (empty: valid). Exactly one static policy. */
export function validatePolicy(policyId: string, text: string, rules: readonly LabelRule[]): string[] {
  const parts = cedar().policySetTextToParts(text);
  if (parts.type === "failure") return parts.errors.map(message);
  if (parts.policy_templates.length > 0) return ["templates are not supported: write a static policy"];
  if (parts.policies.length !== 1) return [`the text must hold exactly one policy, it holds ${parts.policies.length}`];
  const answer = cedar().validate({ schema: cedarSchema(rules), policies: { staticPolicies: { [policyId]: text } } });
  if (answer.type === "failure") return answer.errors.map(message);
  return answer.validationErrors.map((e) => message(e.error));
}

function message(e: { message: string; help: string | null }): string {
  return e.help ? `${e.message} (${e.help})` : e.message;
}

// ---- Deciding one document with Cedar ----

/** Cedar's answer for a request. */
export interface CedarAnswer {
  allowed: boolean;
  /** Satisfied forbids (deny) or permits (allow). */
  reasons: string[];
  errors: string[];
}

function principalUid(p: PolicyPrincipal) {
  return p.userId ? { type: "User", id: p.userId } : { type: "ApiKey", id: p.keyId };
}

/** Evaluates `policies` with Cedar for one request. */
export function evaluate(policies: readonly StoredPolicy[], p: PolicyPrincipal, action: PolicyAction, r: PolicyResource): CedarAnswer {
  if (policies.length === 0) return { allowed: false, reasons: [], errors: [] };
  const principal = principalUid(p);
  const resource = { type: "Document", id: r.documentId || "simulated" };
  const answer = cedar().isAuthorized({
    principal,
    action: { type: "Action", id: action },
    resource,
    context: {},
    policies: { staticPolicies: Object.fromEntries(policies.map((x) => [x.policyId, x.text])) },
    entities: [
      { uid: principal, attrs: { role: p.role, userId: p.userId }, parents: p.groups.map((g) => ({ type: "Group", id: g })) },
      ...p.groups.map((g) => ({ uid: { type: "Group", id: g }, attrs: {}, parents: [] })),
      {
        uid: resource,
        attrs: { labels: { ...r.labels }, corpus: r.corpusId, owner: r.ownerUserId },
        parents: r.corpusId ? [{ type: "Corpus", id: r.corpusId }] : [],
      },
    ],
  });
  if (answer.type === "failure") return { allowed: false, reasons: [], errors: answer.errors.map(message) };
  const { decision, diagnostics } = answer.response;
  return {
    allowed: decision === "allow",
    reasons: [...diagnostics.reason].sort(),
    errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`),
  };
}

/** What document access says about one document, in the decision order. */
export interface AccessDecision {
  allowed: boolean;
  /** "acl: …", "policy", "default deny: …", "acl: grant", "default allow". */
  rule: string;
  policyIds: string[];
  errors: string[];
}

/** The rule of a default denial. */
export const DEFAULT_DENY_RULE = "default deny: no grant or permit policy allows";

/**
 * The decision order (the seed's): the tenant boundary, kill switches and RBAC are the RPC
 * gate's (a call that reaches here passed them); then the access list (`acl`), then policies,
 * forbids first; then the tenant's default. `acl.explicit`: a grant or the owner grant admits
 * the caller (an allowance default deny accepts). With several actions (Run = Search + Run), a
 * forbid on any denies and a permit must cover every one.
 */
export function decideAccess(input: {
  acl: { allowed: boolean; explicit: boolean; rule: string };
  policies: readonly StoredPolicy[];
  principal: PolicyPrincipal;
  actions: readonly PolicyAction[];
  resource: PolicyResource;
  defaultDeny: boolean;
}): AccessDecision {
  if (!input.acl.allowed) return { allowed: false, rule: `acl: ${input.acl.rule}`, policyIds: [], errors: [] };
  const errors: string[] = [];
  const permits = new Set<string>();
  let permitted = input.actions.length > 0;
  for (const action of input.actions) {
    const a = evaluate(input.policies, input.principal, action, input.resource);
    errors.push(...a.errors);
    if (!a.allowed && a.reasons.length > 0) return { allowed: false, rule: "policy", policyIds: a.reasons, errors };
    if (a.allowed) for (const id of a.reasons) permits.add(id);
    else permitted = false;
  }
  if (permitted) return { allowed: true, rule: "policy", policyIds: [...permits].sort(), errors };
  if (input.defaultDeny && !input.acl.explicit) return { allowed: false, rule: DEFAULT_DENY_RULE, policyIds: [], errors };
  return { allowed: true, rule: input.acl.explicit ? "acl: grant" : "default allow", policyIds: [], errors };
}

// ---- Compiling policies into SQL ----

/** A compiled expression: a constant (null = a Cedar error: the policy does not apply) or SQL. */
type Compiled = { c: boolean | null } | { sql: string; nullable?: true };

class Residual extends Error {}

type PolicyJson = Extract<ReturnType<typeof Cedar.policyToJson>, { type: "success" }>["json"];
type Expr = PolicyJson["conditions"][number]["body"];

const parsed = new Map<string, PolicyJson | undefined>();

function policyJson(text: string): PolicyJson | undefined {
  if (!parsed.has(text)) {
    if (parsed.size > 10_000) parsed.clear();
    const a = cedar().policyToJson(text);
    parsed.set(text, a.type === "success" ? a.json : undefined);
  }
  return parsed.get(text);
}

/** The SQL predicates of a caller's applicable policies, on a row alias `c` with document_id, corpus_id, metadata; tenant `$1`. */
export interface CompiledPolicies {
  /** Each forbid that may apply, with its SQL (true when it applies to the row). */
  forbids: { policyId: string; sql: string }[];
  /** Each permit that may apply. */
  permits: { policyId: string; sql: string }[];
  /** Policies the compiler does not cover, that may apply to this caller and these actions. */
  residual: StoredPolicy[];
  /** Whether a residual policy is a permit (default deny cannot be decided in SQL then). */
  residualPermit: boolean;
}

const sqlOf = (x: Compiled): string => ("sql" in x ? x.sql : x.c === null ? "NULL::boolean" : x.c ? "true" : "false");

function and(a: Compiled, b: () => Compiled): Compiled {
  if ("c" in a) return a.c === true ? b() : a;
  const B = b();
  // A never NULL (no label read that may be missing): plain AND is Cedar's short-circuit.
  if (!a.nullable)
    return "c" in B && B.c === null
      ? { sql: `(CASE WHEN ${a.sql} THEN NULL::boolean ELSE false END)`, nullable: true }
      : { sql: `(${a.sql} AND ${sqlOf(B)})`, ...nullableOf(B) };
  return { sql: `(CASE WHEN (${a.sql}) IS NULL THEN NULL WHEN NOT (${a.sql}) THEN false ELSE ${sqlOf(B)} END)`, nullable: true };
}

function or(a: Compiled, b: () => Compiled): Compiled {
  if ("c" in a) return a.c === false ? b() : a;
  const B = b();
  if (!a.nullable)
    return "c" in B && B.c === null
      ? { sql: `(CASE WHEN ${a.sql} THEN true ELSE NULL::boolean END)`, nullable: true }
      : { sql: `(${a.sql} OR ${sqlOf(B)})`, ...nullableOf(B) };
  return { sql: `(CASE WHEN (${a.sql}) IS NULL THEN NULL WHEN (${a.sql}) THEN true ELSE ${sqlOf(B)} END)`, nullable: true };
}

function not(a: Compiled): Compiled {
  return "c" in a ? { c: a.c === null ? null : !a.c } : { sql: `(NOT (${a.sql}))`, ...nullableOf(a) };
}

function nullableOf(x: Compiled): { nullable?: true } {
  return "c" in x ? (x.c === null ? { nullable: true } : {}) : x.nullable ? { nullable: true } : {};
}

type Term =
  | { lit: string | number | boolean }
  | { entity: { type: string; id: string } }
  | { principal: true }
  | { resource: true }
  | { label: string }
  | { column: "corpus" | "owner" };

/**
 * Compiles the caller's applicable enabled policies for `actions` into SQL (the principal side is
 * known, so it folds to constants). Covered: scopes (`principal ==/in/is`, `action ==/in`,
 * `resource ==/in Corpus/is`) and conditions built from `&&`, `||`, `!`, `==`, `!=`, `has`,
 * `in`, `is` over `principal.role`, `principal.userId`, groups (`principal in Group::"g"`),
 * `resource.labels.<key>`, `resource.corpus`, `resource.owner` and literals. Anything else
 * (`like`, `if`, sets, `contains`, extension functions, …) is residual.
 */
export function compilePolicies(
  policies: readonly StoredPolicy[],
  p: PolicyPrincipal,
  actions: readonly PolicyAction[],
  param: (v: unknown) => string,
): CompiledPolicies {
  const out: CompiledPolicies = { forbids: [], permits: [], residual: [], residualPermit: false };
  for (const policy of policies) {
    const json = policyJson(policy.text);
    if (!json) continue;
    const matches = actions.filter((a) => actionMatches(json.action, a));
    // A forbid on any of the actions denies; a permit counts only when it covers every one.
    if (json.effect === "forbid" ? matches.length === 0 : matches.length !== actions.length) continue;
    // Parameters are staged: a policy that turns out residual or inapplicable adds none.
    const staged: unknown[] = [];
    let compiled: Compiled;
    try {
      compiled = compilePolicy(json, p, (v) => `@@nexus_p${staged.push(v) - 1}@@`);
    } catch (err) {
      if (!(err instanceof Residual)) throw err;
      out.residual.push(policy);
      if (json.effect === "permit") out.residualPermit = true;
      continue;
    }
    if ("c" in compiled && compiled.c !== true) continue; // never applies to this caller
    const placeholders = new Map<number, string>();
    const bind = (sql: string) =>
      sql.replace(/@@nexus_p(\d+)@@/g, (_m, i: string) => {
        const n = Number(i);
        if (!placeholders.has(n)) placeholders.set(n, param(staged[n]));
        return placeholders.get(n)!;
      });
    const entry = {
      policyId: policy.policyId,
      sql: "c" in compiled ? "true" : compiled.nullable ? `coalesce(${bind(compiled.sql)}, false)` : bind(compiled.sql),
    };
    (json.effect === "forbid" ? out.forbids : out.permits).push(entry);
  }
  return out;
}

function actionMatches(scope: PolicyJson["action"], action: PolicyAction): boolean {
  if (scope.op === "All") return true;
  const ids = (u: unknown): string[] => {
    const uid = (u as { __entity?: { id: string } }).__entity ?? (u as { id: string });
    return [uid.id];
  };
  if (scope.op === "==") return "entity" in scope && ids(scope.entity).includes(action);
  if ("entities" in scope) return scope.entities.some((e) => ids(e).includes(action));
  return ids(scope.entity).includes(action);
}

function uidOf(u: unknown): { type: string; id: string } {
  const v = u as { __entity?: { type: string; id: string }; type?: string; id?: string };
  if (v.__entity) return v.__entity;
  if (typeof v.type === "string" && typeof v.id === "string") return { type: v.type, id: v.id };
  throw new Residual();
}

function compilePolicy(json: PolicyJson, p: PolicyPrincipal, param: (v: unknown) => string): Compiled {
  const me = principalUid(p);
  const isMe = (u: { type: string; id: string }) => u.type === me.type && u.id === me.id;
  const inGroup = (u: { type: string; id: string }) => isMe(u) || (u.type === "Group" && p.groups.includes(u.id));
  const ps = json.principal;
  let result: Compiled;
  if (ps.op === "All") result = { c: true };
  else if (ps.op === "==") result = { c: "entity" in ps ? isMe(uidOf(ps.entity)) : fail() };
  else if (ps.op === "in") result = { c: "entity" in ps ? inGroup(uidOf(ps.entity)) : fail() };
  else result = { c: ps.entity_type === me.type && (!ps.in || ("entity" in ps.in ? inGroup(uidOf(ps.in.entity)) : fail())) };
  const rs = json.resource;
  const docIs = (u: { type: string; id: string }): Compiled =>
    u.type === "Document" ? { sql: `c.document_id = ${param(u.id)}` } : { c: false };
  const resourceIn = (u: { type: string; id: string }): Compiled =>
    u.type === "Corpus"
      ? { sql: `c.corpus_id = ${param(u.id)}` }
      : u.type === "Document"
        ? { sql: `c.document_id = ${param(u.id)}` }
        : { c: false };
  result = and(result, () => {
    if (rs.op === "All") return { c: true };
    if (rs.op === "==") return "entity" in rs ? docIs(uidOf(rs.entity)) : fail();
    if (rs.op === "in") return "entity" in rs ? resourceIn(uidOf(rs.entity)) : fail();
    if (rs.entity_type !== "Document") return { c: false };
    return rs.in ? ("entity" in rs.in ? resourceIn(uidOf(rs.in.entity)) : fail()) : { c: true };
  });
  const term = (e: Expr): Term => {
    const x = e as Record<string, unknown>;
    if ("Value" in x) {
      const v = x.Value;
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return { lit: v };
      return { entity: uidOf(v) };
    }
    if ("Var" in x) {
      if (x.Var === "principal") return { principal: true };
      if (x.Var === "resource") return { resource: true };
      throw new Residual();
    }
    if ("." in x) {
      const { left, attr } = x["."] as { left: Expr; attr: string };
      const l = left as Record<string, unknown>;
      if ("Var" in l && l.Var === "principal") {
        if (attr === "role") return { lit: p.role };
        if (attr === "userId") return { lit: p.userId };
      }
      if ("Var" in l && l.Var === "resource" && (attr === "corpus" || attr === "owner")) return { column: attr };
      if ("." in l) {
        const inner = l["."] as { left: Record<string, unknown>; attr: string };
        if (inner.attr === "labels" && inner.left.Var === "resource") return { label: attr };
      }
    }
    throw new Residual();
  };

  const labelIsString = (key: string) => `coalesce(jsonb_typeof(c.metadata -> ${param(key)}::text) = 'string', false)`;
  const equal = (a: Term, b: Term, known: ReadonlySet<string>): Compiled => {
    if ("lit" in a && "lit" in b) return { c: a.lit === b.lit };
    if ("lit" in a || "entity" in a) return equal(b, a, known);
    if ("label" in a && "lit" in b && typeof b.lit === "string") {
      const k = `${param(a.label)}::text`;
      // Behind `resource.labels has <key> &&` the label is a string: a plain comparison is exact.
      if (known.has(a.label)) return { sql: `c.metadata -> ${k} = to_jsonb(${param(b.lit)}::text)` };
      return {
        sql: `(CASE WHEN jsonb_typeof(c.metadata -> ${k}) = 'string' THEN c.metadata -> ${k} = to_jsonb(${param(b.lit)}::text) END)`,
        nullable: true,
      };
    }
    if ("column" in a && "lit" in b && typeof b.lit === "string") {
      if (a.column === "corpus") return { sql: `c.corpus_id = ${param(b.lit)}` };
      const owners = `SELECT o.document_id FROM retrieval.document_access o WHERE o.tenant_id = $1 AND o.owner_user_id <> ''`;
      return b.lit === ""
        ? { sql: `c.document_id NOT IN (${owners})` }
        : { sql: `c.document_id IN (${owners} AND o.owner_user_id = ${param(b.lit)})` };
    }
    if ("principal" in a && "entity" in b) return { c: isMe(b.entity) };
    if ("resource" in a && "entity" in b) return docIs(b.entity);
    throw new Residual();
  };

  /** The labels `e` being true proves present (strings): `resource.labels has k`, and `&&` of those. */
  const asserted = (e: Expr): string[] => {
    const x = e as Record<string, unknown>;
    if ("&&" in x) {
      const { left, right } = x["&&"] as { left: Expr; right: Expr };
      return [...asserted(left), ...asserted(right)];
    }
    if ("has" in x) {
      const { left, attr } = x.has as { left: Record<string, unknown>; attr: unknown };
      const inner = left["."] as { left: Record<string, unknown>; attr: string } | undefined;
      if (typeof attr === "string" && inner?.attr === "labels" && inner.left.Var === "resource") return [attr];
    }
    return [];
  };

  const expr = (e: Expr, known: ReadonlySet<string> = new Set()): Compiled => {
    const x = e as Record<string, unknown>;
    if ("Value" in x && typeof x.Value === "boolean") return { c: x.Value };
    if ("&&" in x) {
      const { left, right } = x["&&"] as { left: Expr; right: Expr };
      // The right side runs only when the left is true: the labels it asserts are strings there.
      return and(expr(left, known), () => expr(right, new Set([...known, ...asserted(left)])));
    }
    if ("||" in x) {
      const { left, right } = x["||"] as { left: Expr; right: Expr };
      return or(expr(left, known), () => expr(right, known));
    }
    if ("!" in x) return not(expr((x["!"] as { arg: Expr }).arg, known));
    if ("==" in x || "!=" in x) {
      const { left, right } = (x["=="] ?? x["!="]) as { left: Expr; right: Expr };
      const r = equal(term(left), term(right), known);
      return "==" in x ? r : not(r);
    }
    if ("has" in x) {
      const { left, attr } = x.has as { left: Expr; attr: unknown };
      if (typeof attr !== "string") throw new Residual();
      const ll = left as Record<string, unknown>;
      if ("." in ll) {
        const inner = ll["."] as { left: Record<string, unknown>; attr: string };
        if (inner.attr === "labels" && inner.left.Var === "resource") return { sql: labelIsString(attr) };
      }
      const l = term(left);
      if ("principal" in l) return { c: attr === "role" || attr === "userId" };
      if ("resource" in l) return { c: ["labels", "corpus", "owner"].includes(attr) };
      throw new Residual();
    }
    if ("in" in x) {
      const { left, right } = x.in as { left: Expr; right: Expr };
      const l = term(left);
      const r = term(right);
      if (!("entity" in r)) throw new Residual();
      if ("principal" in l) return { c: inGroup(r.entity) };
      if ("resource" in l) return resourceIn(r.entity);
      throw new Residual();
    }
    if ("is" in x) {
      const { left, entity_type, in: within } = x.is as { left: Expr; entity_type: string; in?: Expr };
      if (within) throw new Residual();
      const l = term(left);
      if ("principal" in l) return { c: entity_type === me.type };
      if ("resource" in l) return { c: entity_type === "Document" };
      throw new Residual();
    }
    throw new Residual();
  };

  for (const clause of json.conditions) {
    result = and(result, () => (clause.kind === "when" ? expr(clause.body) : not(expr(clause.body))));
  }
  return result;
}

function fail(): never {
  throw new Residual();
}
