import { createHash, randomUUID } from "node:crypto";
import type { Database, Queryable } from "../../services/kernel/db/ports.js";

/**
 * One row per tenant in EVERY table of the services' schemas that has a tenant column, built
 * from the catalogue (information_schema + check constraints) rather than a hand list, so a
 * table added later is seeded — and must then be deleted at offboarding or kept on purpose —
 * without touching the test. Used by the tenant offboarding tests.
 */

/** The service schemas (the platform schema belongs to the kernel: events, legal holds, retention). */
export const SERVICE_SCHEMAS = ["auth", "metering", "audit", "ingestion", "retrieval", "agent", "modules", "integration"] as const;

/** Tables that keep an offboarded tenant's rows on purpose (docs/event-sourcing.md, "Tenant offboarding"). */
export const KEPT_TABLES = ["audit.entries", "audit.checkpoints", "modules.revenue_ledger"] as const;

/** Columns that hold a tenant id. */
const TENANT_COLUMN = /(^|_)tenant_id$/;

interface Column {
  table: string;
  column: string;
  udt: string;
  nullable: boolean;
  hasDefault: boolean;
  identity: boolean;
}

/** Values the catalogue cannot guess (foreign keys to rows seeded here, compound checks). */
const OVERRIDES: Record<string, Record<string, (tenant: string) => unknown>> = {
  "auth.api_keys": { id: (t) => `${t}-key`, kind: () => "tenant", role: () => "admin" },
  "auth.console_sessions": { key_id: (t) => `${t}-key` },
  "auth.memberships": { user_id: (t) => `${t}-user`, role: () => "admin" },
  "auth.sessions": { user_id: (t) => `${t}-user` },
  "auth.scim_users": { user_id: (t) => `${t}-user` },
  "auth.scim_groups": { id: (t) => `${t}-group` },
  "auth.scim_group_members": { group_id: (t) => `${t}-group`, user_id: (t) => `${t}-user` },
};

async function columns(db: Queryable): Promise<Map<string, Column[]>> {
  const { rows } = await db.query<{
    s: string;
    t: string;
    c: string;
    udt: string;
    n: string;
    d: string | null;
    ident: string;
    gen: string;
  }>(
    `SELECT c.table_schema s, c.table_name t, c.column_name c, c.udt_name udt, c.is_nullable n, c.column_default d,
            c.is_identity ident, c.is_generated gen
       FROM information_schema.columns c
       JOIN information_schema.tables t USING (table_schema, table_name)
      WHERE t.table_type = 'BASE TABLE' AND c.table_schema = ANY($1::text[])
      ORDER BY c.table_schema, c.table_name, c.ordinal_position`,
    [SERVICE_SCHEMAS],
  );
  const out = new Map<string, Column[]>();
  for (const r of rows) {
    const table = `${r.s}.${r.t}`;
    const list = out.get(table) ?? [];
    list.push({
      table,
      column: r.c,
      udt: r.udt,
      nullable: r.n === "YES",
      hasDefault: r.d !== null,
      identity: r.ident === "YES" || r.gen === "ALWAYS",
    });
    out.set(table, list);
  }
  return out;
}

/** The first literal a check constraint allows for a column (`c = ANY (ARRAY['a', …])`, `c = 'a'`). */
async function checkLiterals(db: Queryable): Promise<Map<string, string>> {
  const { rows } = await db.query<{ tbl: string; def: string }>(
    `SELECT conrelid::regclass::text AS tbl, pg_get_constraintdef(oid) AS def
       FROM pg_constraint WHERE contype = 'c' AND connamespace::regnamespace::text = ANY($1::text[])`,
    [SERVICE_SCHEMAS],
  );
  const out = new Map<string, string>();
  for (const r of rows) {
    for (const m of r.def.matchAll(/\(?(\w+) = (?:ANY \(ARRAY\[)?'([^']*)'/g)) {
      const key = `${r.tbl}.${m[1]}`;
      if (!out.has(key)) out.set(key, m[2] ?? "");
    }
  }
  return out;
}

function valueFor(col: Column, tenant: string, literals: Map<string, string>): unknown {
  const override = OVERRIDES[col.table]?.[col.column];
  if (override) return override(tenant);
  if (TENANT_COLUMN.test(col.column)) return tenant;
  const literal = literals.get(`${col.table}.${col.column}`);
  if (literal !== undefined) return literal;
  switch (col.udt) {
    case "text":
    case "varchar":
    case "citext":
      return `${tenant}-${col.column}`.replace(/_/g, "-");
    case "int2":
    case "int4":
    case "int8":
    case "numeric":
    case "float4":
    case "float8":
      return 1;
    case "bool":
      return false;
    case "json":
    case "jsonb":
      return "{}";
    case "timestamptz":
    case "timestamp":
    case "date":
      return new Date();
    case "uuid":
      return randomUUID();
    case "bytea":
      return createHash("sha256").update(`${col.table}.${col.column}:${tenant}`).digest(); // unique per tenant, 32 bytes
    case "_text":
      return [];
    default:
      return null;
  }
}

/**
 * Inserts one row per tenant into every service table with a tenant column (parents first:
 * it retries until no insert makes progress). Returns the tables and, per table, why it could
 * not be seeded (empty when every table was).
 */
export async function seedTenantRows(
  db: Database,
  tenants: readonly string[],
): Promise<{ tables: string[]; failed: Record<string, string> }> {
  for (const t of tenants) {
    await db.query(
      "INSERT INTO auth.users (id, email, display_name, platform_operator, created_at, version) VALUES ($1, $2, $1, false, now(), 1) ON CONFLICT DO NOTHING",
      [`${t}-user`, `${t}@example.test`],
    );
  }
  const all = await columns(db);
  const literals = await checkLiterals(db);
  const tables = [...all.keys()].filter((t) => all.get(t)?.some((c) => TENANT_COLUMN.test(c.column)));
  const failed: Record<string, string> = {};
  let pending = tables.flatMap((table) => tenants.map((tenant) => ({ table, tenant })));
  for (let round = 0; round < 5 && pending.length > 0; round++) {
    const next: typeof pending = [];
    for (const p of pending) {
      const cols = (all.get(p.table) ?? []).filter(
        (c) => !c.identity && ((!c.nullable && !c.hasDefault) || TENANT_COLUMN.test(c.column) || OVERRIDES[p.table]?.[c.column]),
      );
      const sql = `INSERT INTO ${p.table} (${cols.map((c) => c.column).join(", ")}) VALUES (${cols.map((_, i) => `$${i + 1}`).join(", ")})`;
      try {
        await db.query(
          sql,
          cols.map((c) => valueFor(c, p.tenant, literals)),
        );
        delete failed[p.table];
      } catch (err) {
        failed[p.table] = err instanceof Error ? err.message : String(err);
        next.push(p);
      }
    }
    pending = next;
  }
  return { tables, failed };
}

/** Rows of `tenant` in each table (any tenant column naming it). */
export async function countTenantRows(db: Queryable, tables: readonly string[], tenant: string): Promise<Record<string, number>> {
  const all = await columns(db);
  const out: Record<string, number> = {};
  for (const table of tables) {
    const cols = (all.get(table) ?? []).filter((c) => TENANT_COLUMN.test(c.column)).map((c) => `${c.column} = $1`);
    const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table} WHERE ${cols.join(" OR ")}`, [tenant]);
    out[table] = rows[0]?.n ?? 0;
  }
  return out;
}
