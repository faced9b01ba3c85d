import { type Filter, parse } from "scim2-parse-filter";

/**
 * SCIM 2.0 (RFC 7643/7644) as the directories of Okta and Entra ID speak it, pure: errors,
 * filters (parsed by `scim2-parse-filter`, evaluated here with case-insensitive attribute names)
 * and PATCH operations (add/replace/remove with and without `path`, value filters such as
 * `members[value eq "…"]` and `emails[type eq "work"].value`, extension URNs, and Entra ID's
 * habits: capitalised ops, dotted keys in a path-less value, booleans sent as "True"/"False").
 */

export const SCIM_USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User";
export const SCIM_GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group";
export const SCIM_ENTERPRISE_USER_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
export const SCIM_ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";
export const SCIM_LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
export const SCIM_PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/** The `scimType` values of RFC 7644 §3.12 that Nexus answers with. */
export type ScimType =
  | "invalidFilter"
  | "tooMany"
  | "uniqueness"
  | "mutability"
  | "invalidSyntax"
  | "invalidPath"
  | "noTarget"
  | "invalidValue"
  | "invalidVers";

/** A refusal with its HTTP status and, for 400/409, its scimType. */
export class ScimError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly scimType?: ScimType,
  ) {
    super(message);
    this.name = "ScimError";
  }

  /** The error body of RFC 7644 §3.12 (`status` is a string there). */
  body(): Record<string, unknown> {
    return {
      schemas: [SCIM_ERROR_SCHEMA],
      status: String(this.status),
      ...(this.scimType ? { scimType: this.scimType } : {}),
      detail: this.message,
    };
  }
}

/** A SCIM resource as JSON. */
export type ScimResource = Record<string, unknown>;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The key of `obj` that names `name` case-insensitively (attribute names are case-insensitive). */
export function keyOf(obj: Record<string, unknown>, name: string): string | undefined {
  if (name in obj) return name;
  const lower = name.toLowerCase();
  return Object.keys(obj).find((k) => k.toLowerCase() === lower);
}

/** The value of `name` in `obj`, any case. */
export function attr(obj: Record<string, unknown>, name: string): unknown {
  const key = keyOf(obj, name);
  return key === undefined ? undefined : obj[key];
}

// ---- filters ----

/** Attributes compared exactly (RFC 7643 caseExact); every other string compares case-insensitively. */
const CASE_EXACT = new Set(["id", "externalid", "value", "$ref"]);

/** Parses a filter expression; a bad one is 400 invalidFilter. */
export function parseFilter(expression: string): Filter {
  try {
    return parse(expression);
  } catch (err) {
    throw new ScimError(400, `the filter is not valid SCIM: ${(err as Error).message}`, "invalidFilter");
  }
}

/** A path as the filter grammar has it: `[urn:…:]attr[.sub]`. */
function splitAttrPath(path: string): { container?: string; names: string[] } {
  if (path.toLowerCase().startsWith("urn:")) {
    const at = path.lastIndexOf(":");
    const container = path.slice(0, at);
    const rest = path.slice(at + 1);
    // The core schemas' URNs name root attributes; an extension's URN names its container.
    if (container.toLowerCase() === SCIM_USER_SCHEMA.toLowerCase() || container.toLowerCase() === SCIM_GROUP_SCHEMA.toLowerCase()) {
      return { names: rest.split(".") };
    }
    return { container, names: rest.split(".") };
  }
  return { names: path.split(".") };
}

/** Every value the attribute path reaches in `resource` (multi-valued attributes flatten). */
function valuesAt(resource: Record<string, unknown>, path: string): unknown[] {
  const { container, names } = splitAttrPath(path);
  let current: unknown[] = [container === undefined ? resource : attr(resource, container)];
  for (const name of names) {
    const next: unknown[] = [];
    for (const c of current) {
      const items = Array.isArray(c) ? c : [c];
      for (const item of items) {
        if (!isObject(item)) continue;
        const v = attr(item, name);
        if (Array.isArray(v)) next.push(...v);
        else if (v !== undefined && v !== null) next.push(v);
      }
    }
    current = next;
  }
  // `emails eq "x"` compares the elements' `value`.
  return current.map((v) => (isObject(v) && "value" in v ? v.value : v));
}

function compare(op: string, actual: unknown, expected: unknown, caseExact: boolean): boolean {
  if (typeof actual === "string" && typeof expected === "string") {
    const a = caseExact ? actual : actual.toLowerCase();
    const e = caseExact ? expected : expected.toLowerCase();
    switch (op) {
      case "eq":
        return a === e;
      case "ne":
        return a !== e;
      case "co":
        return a.includes(e);
      case "sw":
        return a.startsWith(e);
      case "ew":
        return a.endsWith(e);
      case "gt":
        return a > e;
      case "ge":
        return a >= e;
      case "lt":
        return a < e;
      case "le":
        return a <= e;
      default:
        return false;
    }
  }
  const a = typeof actual === "string" && typeof expected === "boolean" ? actual.toLowerCase() === "true" : actual;
  switch (op) {
    case "eq":
      return a === expected;
    case "ne":
      return a !== expected;
    case "gt":
      return typeof a === "number" && typeof expected === "number" && a > expected;
    case "ge":
      return typeof a === "number" && typeof expected === "number" && a >= expected;
    case "lt":
      return typeof a === "number" && typeof expected === "number" && a < expected;
    case "le":
      return typeof a === "number" && typeof expected === "number" && a <= expected;
    default:
      return false;
  }
}

/** Whether `resource` matches the parsed filter (attribute names any case). */
export function matches(filter: Filter, resource: Record<string, unknown>): boolean {
  switch (filter.op) {
    case "and":
      return filter.filters.every((f) => matches(f, resource));
    case "or":
      return filter.filters.some((f) => matches(f, resource));
    case "not":
      return !matches(filter.filter, resource);
    case "pr":
      return valuesAt(resource, filter.attrPath).some((v) => v !== "" && !(Array.isArray(v) && v.length === 0));
    case "[]": {
      const items = valuesOfComplex(resource, filter.attrPath);
      return items.some((item) => matches(filter.valFilter, item));
    }
    default: {
      const last = splitAttrPath(filter.attrPath).names.at(-1)?.toLowerCase() ?? "";
      const values = valuesAt(resource, filter.attrPath);
      if (filter.op === "ne") return values.length === 0 || values.every((v) => compare("ne", v, filter.compValue, CASE_EXACT.has(last)));
      return values.some((v) => compare(filter.op, v, filter.compValue, CASE_EXACT.has(last)));
    }
  }
}

function valuesOfComplex(resource: Record<string, unknown>, path: string): Record<string, unknown>[] {
  const { container, names } = splitAttrPath(path);
  const root = container === undefined ? resource : attr(resource, container);
  if (!isObject(root) || names.length !== 1) return [];
  const v = attr(root, names[0] ?? "");
  return (Array.isArray(v) ? v : [v]).filter(isObject);
}

/**
 * The equality a store can look up by index: `<attribute> eq "value"` on one of `attributes`,
 * alone or as a conjunct of an `and` (the rest is then checked in memory).
 */
export function indexedEquality(filter: Filter, attributes: readonly string[]): { attribute: string; value: string } | undefined {
  if (filter.op === "eq" && typeof filter.compValue === "string") {
    const found = attributes.find((a) => a.toLowerCase() === filter.attrPath.toLowerCase());
    if (found) return { attribute: found, value: filter.compValue };
  }
  if (filter.op === "and") {
    for (const f of filter.filters) {
      const found = indexedEquality(f, attributes);
      if (found) return found;
    }
  }
  return undefined;
}

// ---- paging ----

/** startIndex (1-based) and count of a list request, as RFC 7644 §3.4.2.4 reads them. */
export function paging(params: URLSearchParams, maxCount: number): { startIndex: number; count: number } {
  const start = Number.parseInt(params.get("startIndex") ?? "1", 10);
  const count = Number.parseInt(params.get("count") ?? String(maxCount), 10);
  return {
    startIndex: Number.isFinite(start) && start >= 1 ? start : 1,
    count: Number.isFinite(count) ? Math.min(Math.max(count, 0), maxCount) : maxCount,
  };
}

// ---- PATCH ----

/** One PATCH operation as received. */
export interface PatchOperation {
  op: "add" | "replace" | "remove";
  path?: string;
  value?: unknown;
}

/** The operations of a PatchOp request body; a malformed one is 400 invalidSyntax. */
export function patchOperations(body: unknown): PatchOperation[] {
  if (!isObject(body)) throw new ScimError(400, "the request body must be a JSON object", "invalidSyntax");
  const ops = attr(body, "Operations");
  if (!Array.isArray(ops) || ops.length === 0) throw new ScimError(400, "a PatchOp needs a non-empty Operations array", "invalidSyntax");
  return ops.map((raw, i) => {
    if (!isObject(raw)) throw new ScimError(400, `Operations[${i}] must be an object`, "invalidSyntax");
    const op = String(attr(raw, "op") ?? "").toLowerCase();
    if (op !== "add" && op !== "replace" && op !== "remove") {
      throw new ScimError(400, `Operations[${i}].op must be add, replace or remove`, "invalidSyntax");
    }
    const path = attr(raw, "path");
    if (path !== undefined && typeof path !== "string") throw new ScimError(400, `Operations[${i}].path must be a string`, "invalidPath");
    const value = attr(raw, "value");
    if (op !== "remove" && value === undefined) throw new ScimError(400, `Operations[${i}] (${op}) needs a value`, "invalidValue");
    if (op === "remove" && !path) throw new ScimError(400, `Operations[${i}] (remove) needs a path`, "noTarget");
    return { op, ...(path ? { path } : {}), ...(value !== undefined ? { value } : {}) };
  });
}

/** A PATCH path: `[urn:…:]attr[[filter]][.sub]`. */
interface PatchPath {
  container?: string;
  attribute: string;
  filter?: Filter;
  sub?: string;
}

function parsePatchPath(path: string): PatchPath {
  const bracket = path.indexOf("[");
  if (bracket >= 0) {
    const close = path.lastIndexOf("]");
    if (close < bracket) throw new ScimError(400, `the path "${path}" has an unclosed filter`, "invalidPath");
    const head = splitAttrPath(path.slice(0, bracket));
    const tail = path.slice(close + 1);
    if (head.names.length !== 1 || (tail !== "" && !/^\.[A-Za-z$][\w$-]*$/.test(tail))) {
      throw new ScimError(400, `the path "${path}" is not supported`, "invalidPath");
    }
    let filter: Filter;
    try {
      filter = parse(path.slice(bracket + 1, close));
    } catch (err) {
      throw new ScimError(400, `the path's filter is not valid: ${(err as Error).message}`, "invalidPath");
    }
    return {
      ...(head.container ? { container: head.container } : {}),
      attribute: head.names[0] ?? "",
      filter,
      ...(tail ? { sub: tail.slice(1) } : {}),
    };
  }
  const { container, names } = splitAttrPath(path);
  if (names.length > 2 || names.some((n) => !/^[A-Za-z$][\w$-]*$/.test(n))) {
    throw new ScimError(400, `the path "${path}" is not a SCIM attribute path`, "invalidPath");
  }
  return { ...(container ? { container } : {}), attribute: names[0] ?? "", ...(names[1] ? { sub: names[1] } : {}) };
}

/** The object a path's attribute lives in (created for add/replace). */
function containerOf(doc: Record<string, unknown>, p: PatchPath, create: boolean): Record<string, unknown> | undefined {
  if (p.container === undefined) return doc;
  const key = keyOf(doc, p.container) ?? p.container;
  const existing = doc[key];
  if (isObject(existing)) return existing;
  if (!create) return undefined;
  const made: Record<string, unknown> = {};
  doc[key] = made;
  return made;
}

/** The equality attributes of a value filter (`type eq "work"` → {type: "work"}) for a new element. */
function equalities(filter: Filter): Record<string, unknown> {
  if (filter.op === "eq") return { [filter.attrPath]: filter.compValue };
  if (filter.op === "and") return Object.assign({}, ...filter.filters.map(equalities));
  return {};
}

/** The identity of a multi-valued element (its `value`, else the whole JSON). */
const identity = (v: unknown): string => (isObject(v) && "value" in v ? `v:${String(v.value)}` : JSON.stringify(v));

function addValues(existing: unknown, value: unknown): unknown {
  if (Array.isArray(existing) || Array.isArray(value)) {
    const current = Array.isArray(existing) ? [...existing] : existing === undefined ? [] : [existing];
    const seen = new Set(current.map(identity));
    for (const v of Array.isArray(value) ? value : [value]) {
      if (!seen.has(identity(v))) {
        current.push(v);
        seen.add(identity(v));
      }
    }
    return current;
  }
  if (isObject(existing) && isObject(value)) return mergeObjects(existing, value);
  return value;
}

function mergeObjects(target: Record<string, unknown>, value: Record<string, unknown>): Record<string, unknown> {
  const out = { ...target };
  for (const [k, v] of Object.entries(value)) out[keyOf(out, k) ?? k] = v;
  return out;
}

function applyOne(doc: Record<string, unknown>, op: PatchOperation): void {
  if (op.path === undefined) {
    // No path: the value is an object of attributes (Okta: {"active": false}; Entra ID also
    // sends dotted keys such as "name.givenName").
    if (!isObject(op.value)) throw new ScimError(400, `a ${op.op} without a path needs an object value`, "invalidValue");
    for (const [k, v] of Object.entries(op.value)) {
      const extension = k.toLowerCase().startsWith("urn:") && isObject(v) && !k.includes(".");
      if (extension) {
        const key = keyOf(doc, k) ?? k;
        doc[key] =
          op.op === "replace" ? mergeObjects(isObject(doc[key]) ? (doc[key] as Record<string, unknown>) : {}, v) : addValues(doc[key], v);
      } else {
        applyOne(doc, { op: op.op, path: k, value: v });
      }
    }
    return;
  }
  const p = parsePatchPath(op.path);
  const container = containerOf(doc, p, op.op !== "remove");
  if (container === undefined) return;
  const key = keyOf(container, p.attribute) ?? p.attribute;
  const current = container[key];

  if (p.filter !== undefined) {
    const filter = p.filter;
    const items = (Array.isArray(current) ? current : current === undefined ? [] : [current]).filter((x) => x !== null);
    const hit = (x: unknown) => isObject(x) && matches(filter, x);
    if (op.op === "remove") {
      container[key] =
        p.sub === undefined
          ? items.filter((x) => !hit(x))
          : items.map((x) => {
              if (!hit(x)) return x;
              const copy = { ...(x as Record<string, unknown>) };
              const sub = keyOf(copy, p.sub ?? "");
              if (sub !== undefined) delete copy[sub];
              return copy;
            });
      return;
    }
    if (!items.some(hit)) {
      // Entra ID adds `emails[type eq "work"].value` to a user with no work e-mail: make the element.
      const made = {
        ...equalities(filter),
        ...(p.sub === undefined ? (isObject(op.value) ? op.value : { value: op.value }) : { [p.sub]: op.value }),
      };
      container[key] = [...items, made];
      return;
    }
    container[key] = items.map((x) => {
      if (!hit(x)) return x;
      const el = x as Record<string, unknown>;
      if (p.sub !== undefined) return { ...el, [keyOf(el, p.sub) ?? p.sub]: op.value };
      return op.op === "replace" && isObject(op.value) ? mergeObjects(el, op.value) : addValues(el, op.value);
    });
    return;
  }

  if (p.sub !== undefined) {
    const parent = isObject(current) ? { ...current } : {};
    const subKey = keyOf(parent, p.sub) ?? p.sub;
    if (op.op === "remove") delete parent[subKey];
    else parent[subKey] = op.value;
    container[key] = parent;
    return;
  }
  if (op.op === "remove") {
    // Entra ID removes members as {"op":"Remove","path":"members","value":[{"value":"…"}]}.
    if (op.value !== undefined && Array.isArray(current)) {
      const gone = new Set((Array.isArray(op.value) ? op.value : [op.value]).map(identity));
      container[key] = current.filter((x) => !gone.has(identity(x)));
    } else {
      delete container[key];
    }
    return;
  }
  container[key] = op.op === "replace" ? op.value : addValues(current, op.value);
}

/** `doc` after the operations (a copy; `doc` is not changed). */
export function applyPatch(doc: ScimResource, operations: readonly PatchOperation[]): ScimResource {
  const out = structuredClone(doc);
  for (const op of operations) applyOne(out, op);
  return out;
}

/** A SCIM boolean: true/false, or Entra ID's "True"/"False". */
export function scimBoolean(value: unknown, field: string): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "string" && /^(true|false)$/i.test(value)) return value.toLowerCase() === "true";
  throw new ScimError(400, `${field} must be a boolean`, "invalidValue");
}
