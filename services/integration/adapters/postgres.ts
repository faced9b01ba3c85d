import type { JsonValue } from "@bufbuild/protobuf";
import type { Queryable } from "../../kernel/db/ports.js";
import type { AppField } from "../domain/field-schema.js";
import type { DestinationKindName } from "./destination-drivers.js";

/** A sender app row. */
export interface AppRow {
  id: string;
  tenantId: string;
  name: string;
  fields: AppField[];
  encryptionRequired: boolean;
  keyPrefix: string;
  keyVersion: number;
  retiredBefore: number;
  /** Version → sealed master secret. */
  masterSecrets: Record<string, string>;
  /** The Kubernetes resource that declares it ("" when not managed by Kubernetes). */
  kubernetesResource: string;
  createdAt: Date;
}

/** A destination row (secret still sealed). */
export interface DestinationRow {
  id: string;
  tenantId: string;
  name: string;
  kind: DestinationKindName;
  config: JsonValue;
  sealedSecret: string | null;
  /** The Kubernetes resource that declares it ("" when not managed by Kubernetes). */
  kubernetesResource: string;
  createdAt: Date;
}

/** A workflow row. */
export interface WorkflowRow {
  id: string;
  tenantId: string;
  name: string;
  currentVersion: number;
  kind: string;
  sourceAppId: string | null;
  sourceMqttId: string | null;
  retentionHours: number;
  /** The Kubernetes resource that declares it ("" when not managed by Kubernetes). */
  kubernetesResource: string;
  /** False while paused. */
  enabled: boolean;
  /** Who paused it: "" for a user, `saga:<id>` for a tenant's offboarding (which resumes only its own). */
  pausedBy: string;
  createdAt: Date;
}

/** An MQTT source row. */
export interface MqttRow {
  id: string;
  tenantId: string;
  name: string;
  url: string;
  username: string;
  sealedPassword: string | null;
  topics: string[];
  qos: 0 | 1 | 2;
  format: "json" | "csv" | "raw";
  createdAt: Date;
}

/** An execution log row. */
export interface ExecutionRow {
  id: string;
  tenantId: string;
  messageId: string;
  workflowId: string;
  workflowVersion: number;
  target: string;
  destinationId: string;
  step: string;
  status: string;
  attempts: number;
  latencyMs: number;
  error: string;
  detail: Record<string, JsonValue> | null;
  updatedAt: Date;
  tick: bigint;
}

type Row = Record<string, unknown>;

const app = (r: Row): AppRow => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  name: r.name as string,
  fields: r.fields as AppField[],
  encryptionRequired: r.encryption_required as boolean,
  keyPrefix: r.key_prefix as string,
  keyVersion: r.key_version as number,
  retiredBefore: r.retired_before as number,
  masterSecrets: r.master_secrets as Record<string, string>,
  kubernetesResource: (r.kubernetes_resource as string | undefined) ?? "",
  createdAt: r.created_at as Date,
});
const destination = (r: Row): DestinationRow => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  name: r.name as string,
  kind: r.kind as DestinationKindName,
  config: r.config as JsonValue,
  sealedSecret: (r.sealed_secret as string | null) ?? null,
  kubernetesResource: (r.kubernetes_resource as string | undefined) ?? "",
  createdAt: r.created_at as Date,
});
const workflow = (r: Row): WorkflowRow => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  name: r.name as string,
  currentVersion: r.current_version as number,
  kind: r.kind as string,
  sourceAppId: (r.source_app_id as string | null) ?? null,
  sourceMqttId: (r.source_mqtt_id as string | null) ?? null,
  retentionHours: r.retention_hours as number,
  kubernetesResource: (r.kubernetes_resource as string | undefined) ?? "",
  enabled: (r.enabled as boolean | undefined) ?? true,
  pausedBy: (r.paused_by as string | null) ?? "",
  createdAt: r.created_at as Date,
});
const mqtt = (r: Row): MqttRow => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  name: r.name as string,
  url: r.url as string,
  username: r.username as string,
  sealedPassword: (r.sealed_password as string | null) ?? null,
  topics: r.topics as string[],
  qos: r.qos as 0 | 1 | 2,
  format: r.format as MqttRow["format"],
  createdAt: r.created_at as Date,
});
const execution = (r: Row): ExecutionRow => ({
  id: r.id as string,
  tenantId: r.tenant_id as string,
  messageId: r.message_id as string,
  workflowId: r.workflow_id as string,
  workflowVersion: r.workflow_version as number,
  target: r.target as string,
  destinationId: r.destination_id as string,
  step: r.step as string,
  status: r.status as string,
  attempts: r.attempts as number,
  latencyMs: r.latency_ms as number,
  error: r.error as string,
  detail: (r.detail as Record<string, JsonValue> | null) ?? null,
  updatedAt: r.updated_at as Date,
  tick: BigInt(r.tick as bigint),
});

/** True when `err` is a unique violation (a name already taken). */
export function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === "23505";
}

/** The integration schema's queries. Every query of tenant data names the tenant. */
export const store = {
  async insertApp(q: Queryable, a: Omit<AppRow, "createdAt">, digest: Buffer): Promise<void> {
    await q.query(
      `INSERT INTO integration.sender_apps (id, tenant_id, name, fields, encryption_required, key_digest, key_prefix, key_version, retired_before, master_secrets, kubernetes_resource)
       VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7, $8, $9, $10::jsonb, $11)`,
      [
        a.id,
        a.tenantId,
        a.name,
        JSON.stringify(a.fields),
        a.encryptionRequired,
        digest,
        a.keyPrefix,
        a.keyVersion,
        a.retiredBefore,
        JSON.stringify(a.masterSecrets),
        a.kubernetesResource,
      ],
    );
  },
  async app(q: Queryable, tenantId: string, id: string, lock = false): Promise<AppRow | undefined> {
    const r = await q.query(`SELECT * FROM integration.sender_apps WHERE tenant_id = $1 AND id = $2${lock ? " FOR UPDATE" : ""}`, [
      tenantId,
      id,
    ]);
    return r.rows[0] ? app(r.rows[0]) : undefined;
  },
  async appByDigest(q: Queryable, digest: Buffer): Promise<AppRow | undefined> {
    const r = await q.query("SELECT * FROM integration.sender_apps WHERE key_digest = $1", [digest]);
    return r.rows[0] ? app(r.rows[0]) : undefined;
  },
  async apps(q: Queryable, tenantId: string): Promise<AppRow[]> {
    return (await q.query("SELECT * FROM integration.sender_apps WHERE tenant_id = $1 ORDER BY name", [tenantId])).rows.map(app);
  },
  async updateApp(q: Queryable, a: AppRow, digest?: Buffer): Promise<void> {
    await q.query(
      `UPDATE integration.sender_apps SET name = $3, fields = $4::jsonb, key_version = $5, retired_before = $6, master_secrets = $7::jsonb,
         key_digest = COALESCE($8, key_digest), kubernetes_resource = $9 WHERE tenant_id = $1 AND id = $2`,
      [
        a.tenantId,
        a.id,
        a.name,
        JSON.stringify(a.fields),
        a.keyVersion,
        a.retiredBefore,
        JSON.stringify(a.masterSecrets),
        digest ?? null,
        a.kubernetesResource,
      ],
    );
  },
  async deleteApp(q: Queryable, tenantId: string, id: string): Promise<AppRow | undefined> {
    const r = await q.query("DELETE FROM integration.sender_apps WHERE tenant_id = $1 AND id = $2 RETURNING *", [tenantId, id]);
    return r.rows[0] ? app(r.rows[0]) : undefined;
  },

  async insertDestination(q: Queryable, d: Omit<DestinationRow, "createdAt">): Promise<void> {
    await q.query(
      `INSERT INTO integration.destinations (id, tenant_id, name, kind, config, sealed_secret, kubernetes_resource)
       VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)`,
      [d.id, d.tenantId, d.name, d.kind, JSON.stringify(d.config), d.sealedSecret, d.kubernetesResource],
    );
  },
  async updateDestination(q: Queryable, d: DestinationRow): Promise<void> {
    await q.query(
      `UPDATE integration.destinations SET name = $3, config = $4::jsonb, sealed_secret = $5, kubernetes_resource = $6
       WHERE tenant_id = $1 AND id = $2`,
      [d.tenantId, d.id, d.name, JSON.stringify(d.config), d.sealedSecret, d.kubernetesResource],
    );
  },
  async destination(q: Queryable, tenantId: string, id: string, lock = false): Promise<DestinationRow | undefined> {
    const r = await q.query(`SELECT * FROM integration.destinations WHERE tenant_id = $1 AND id = $2${lock ? " FOR UPDATE" : ""}`, [
      tenantId,
      id,
    ]);
    return r.rows[0] ? destination(r.rows[0]) : undefined;
  },
  async destinations(q: Queryable, tenantId: string): Promise<DestinationRow[]> {
    return (await q.query("SELECT * FROM integration.destinations WHERE tenant_id = $1 ORDER BY name", [tenantId])).rows.map(destination);
  },
  async deleteDestination(q: Queryable, tenantId: string, id: string): Promise<DestinationRow | undefined> {
    const r = await q.query("DELETE FROM integration.destinations WHERE tenant_id = $1 AND id = $2 RETURNING *", [tenantId, id]);
    return r.rows[0] ? destination(r.rows[0]) : undefined;
  },
  /** Workflows whose current version names the destination. */
  async workflowsUsing(q: Queryable, tenantId: string, destinationId: string): Promise<string[]> {
    const r = await q.query<{ name: string }>(
      `SELECT w.name FROM integration.workflows w JOIN integration.workflow_versions v ON v.workflow_id = w.id AND v.version = w.current_version
       WHERE w.tenant_id = $1 AND v.definition::text LIKE $2`,
      [tenantId, `%"${destinationId}"%`],
    );
    return r.rows.map((x) => x.name);
  },

  async insertWorkflow(q: Queryable, w: Omit<WorkflowRow, "createdAt">): Promise<void> {
    await q.query(
      `INSERT INTO integration.workflows (id, tenant_id, name, current_version, kind, source_app_id, source_mqtt_id, retention_hours, kubernetes_resource)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
      [w.id, w.tenantId, w.name, w.currentVersion, w.kind, w.sourceAppId, w.sourceMqttId, w.retentionHours, w.kubernetesResource],
    );
  },
  async updateWorkflow(q: Queryable, w: WorkflowRow): Promise<void> {
    await q.query(
      `UPDATE integration.workflows SET current_version = $3, kind = $4, source_app_id = $5, source_mqtt_id = $6, retention_hours = $7,
         kubernetes_resource = $8, enabled = $9, paused_by = $10
       WHERE tenant_id = $1 AND id = $2`,
      [
        w.tenantId,
        w.id,
        w.currentVersion,
        w.kind,
        w.sourceAppId,
        w.sourceMqttId,
        w.retentionHours,
        w.kubernetesResource,
        w.enabled,
        w.enabled ? null : w.pausedBy,
      ],
    );
  },
  async insertVersion(q: Queryable, workflowId: string, version: number, definition: JsonValue, createdBy: string): Promise<void> {
    await q.query(
      "INSERT INTO integration.workflow_versions (workflow_id, version, definition, created_by) VALUES ($1, $2, $3::jsonb, $4)",
      [workflowId, version, JSON.stringify(definition), createdBy],
    );
  },
  async workflow(q: Queryable, tenantId: string, id: string, lock = false): Promise<WorkflowRow | undefined> {
    const r = await q.query(`SELECT * FROM integration.workflows WHERE tenant_id = $1 AND id = $2${lock ? " FOR UPDATE" : ""}`, [
      tenantId,
      id,
    ]);
    return r.rows[0] ? workflow(r.rows[0]) : undefined;
  },
  async workflowById(q: Queryable, id: string): Promise<WorkflowRow | undefined> {
    const r = await q.query("SELECT * FROM integration.workflows WHERE id = $1", [id]);
    return r.rows[0] ? workflow(r.rows[0]) : undefined;
  },
  async workflows(q: Queryable, tenantId: string): Promise<WorkflowRow[]> {
    return (await q.query("SELECT * FROM integration.workflows WHERE tenant_id = $1 ORDER BY name", [tenantId])).rows.map(workflow);
  },
  /** Every workflow of the installation with whether it runs (reconcile). */
  async workflowStates(q: Queryable): Promise<{ id: string; enabled: boolean }[]> {
    return (await q.query<{ id: string; enabled: boolean }>("SELECT id, enabled FROM integration.workflows")).rows;
  },
  async workflowsFed(q: Queryable, tenantId: string, by: { appId?: string; mqttId?: string }): Promise<WorkflowRow[]> {
    const r = by.appId
      ? await q.query("SELECT * FROM integration.workflows WHERE tenant_id = $1 AND source_app_id = $2", [tenantId, by.appId])
      : await q.query("SELECT * FROM integration.workflows WHERE tenant_id = $1 AND source_mqtt_id = $2", [tenantId, by.mqttId]);
    return r.rows.map(workflow);
  },
  async version(
    q: Queryable,
    workflowId: string,
    version: number,
  ): Promise<{ definition: JsonValue; createdAt: Date; createdBy: string } | undefined> {
    const r = await q.query(
      "SELECT definition, created_at, created_by FROM integration.workflow_versions WHERE workflow_id = $1 AND version = $2",
      [workflowId, version],
    );
    const row = r.rows[0];
    return row
      ? { definition: row.definition as JsonValue, createdAt: row.created_at as Date, createdBy: row.created_by as string }
      : undefined;
  },
  async versions(
    q: Queryable,
    workflowId: string,
  ): Promise<{ version: number; definition: JsonValue; createdAt: Date; createdBy: string }[]> {
    const r = await q.query("SELECT * FROM integration.workflow_versions WHERE workflow_id = $1 ORDER BY version DESC", [workflowId]);
    return r.rows.map((row) => ({
      version: row.version as number,
      definition: row.definition as JsonValue,
      createdAt: row.created_at as Date,
      createdBy: row.created_by as string,
    }));
  },
  async deleteWorkflow(q: Queryable, tenantId: string, id: string): Promise<WorkflowRow | undefined> {
    const r = await q.query("DELETE FROM integration.workflows WHERE tenant_id = $1 AND id = $2 RETURNING *", [tenantId, id]);
    return r.rows[0] ? workflow(r.rows[0]) : undefined;
  },

  async insertMqtt(q: Queryable, m: Omit<MqttRow, "createdAt">): Promise<void> {
    await q.query(
      `INSERT INTO integration.mqtt_sources (id, tenant_id, name, url, username, sealed_password, topics, qos, format)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9)`,
      [m.id, m.tenantId, m.name, m.url, m.username, m.sealedPassword, JSON.stringify(m.topics), m.qos, m.format],
    );
  },
  async mqttSource(q: Queryable, tenantId: string, id: string): Promise<MqttRow | undefined> {
    const r = await q.query("SELECT * FROM integration.mqtt_sources WHERE tenant_id = $1 AND id = $2", [tenantId, id]);
    return r.rows[0] ? mqtt(r.rows[0]) : undefined;
  },
  async mqttSources(q: Queryable, tenantId?: string): Promise<MqttRow[]> {
    const r = tenantId
      ? await q.query("SELECT * FROM integration.mqtt_sources WHERE tenant_id = $1 ORDER BY name", [tenantId])
      : await q.query("SELECT * FROM integration.mqtt_sources ORDER BY id");
    return r.rows.map(mqtt);
  },
  async deleteMqtt(q: Queryable, tenantId: string, id: string): Promise<MqttRow | undefined> {
    const r = await q.query("DELETE FROM integration.mqtt_sources WHERE tenant_id = $1 AND id = $2 RETURNING *", [tenantId, id]);
    return r.rows[0] ? mqtt(r.rows[0]) : undefined;
  },

  /**
   * Claims a dedupe key for 24 h: the new message id when the key is free (or its claim
   * expired), else the id of the message that holds it.
   */
  /**
   * Claims the dedupe keys of a batch of messages in one statement: a key not claimed within
   * the window gets the item's message id (not yet published); otherwise the existing claim's
   * message id comes back with `duplicate` and whether its message reached the bus.
   */
  async claimMessages(
    q: Queryable,
    items: readonly { tenantId: string; source: string; dedupeKey: string; messageId: string }[],
    now: Date,
    windowMs: number,
  ): Promise<{ messageId: string; duplicate: boolean; published: boolean }[]> {
    const cutoff = new Date(now.getTime() - windowMs);
    const cols = [items.map((i) => i.tenantId), items.map((i) => i.source), items.map((i) => i.dedupeKey), items.map((i) => i.messageId)];
    const r = await q.query<{
      tenant_id: string;
      source: string;
      dedupe_key: string;
      message_id: string;
      published: boolean;
      fresh: boolean;
    }>(
      `WITH input AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::uuid[]) AS t(tenant_id, source, dedupe_key, message_id)),
       claimed AS (
         INSERT INTO integration.messages (tenant_id, source, dedupe_key, message_id, accepted_at, published)
         SELECT tenant_id, source, dedupe_key, message_id, $5, false FROM input
         ON CONFLICT (tenant_id, source, dedupe_key) DO UPDATE SET message_id = EXCLUDED.message_id, accepted_at = EXCLUDED.accepted_at, published = false
         WHERE integration.messages.accepted_at < $6
         RETURNING tenant_id, source, dedupe_key, message_id, published)
       SELECT tenant_id, source, dedupe_key, message_id::text, published, true AS fresh FROM claimed
       UNION ALL
       SELECT m.tenant_id, m.source, m.dedupe_key, m.message_id::text, m.published, false FROM integration.messages m
       JOIN input i USING (tenant_id, source, dedupe_key)`,
      [...cols, now, cutoff],
    );
    // The second SELECT sees the table as it was before the INSERT (one snapshot): a key
    // claimed now appears there only if an expired claim was replaced; "fresh" wins.
    const keyOf = (i: { tenantId: string; source: string; dedupeKey: string }) => `${i.tenantId}\u0000${i.source}\u0000${i.dedupeKey}`;
    const byKey = new Map<string, { messageId: string; duplicate: boolean; published: boolean }>();
    for (const row of r.rows) {
      const key = keyOf({ tenantId: row.tenant_id, source: row.source, dedupeKey: row.dedupe_key });
      if (row.fresh) byKey.set(key, { messageId: row.message_id, duplicate: false, published: false });
      else if (!byKey.has(key)) byKey.set(key, { messageId: row.message_id, duplicate: true, published: row.published });
    }
    // A key claimed by a concurrent batch that committed while ours waited is in neither part
    // (the statement's snapshot predates that commit): a fresh statement sees its claim.
    const missing = items.filter((i) => !byKey.has(keyOf(i)));
    if (missing.length > 0) {
      const again = await q.query<{ tenant_id: string; source: string; dedupe_key: string; message_id: string; published: boolean }>(
        `SELECT m.tenant_id, m.source, m.dedupe_key, m.message_id::text, m.published FROM integration.messages m
         JOIN unnest($1::text[], $2::text[], $3::text[]) AS t(tenant_id, source, dedupe_key) USING (tenant_id, source, dedupe_key)`,
        [missing.map((i) => i.tenantId), missing.map((i) => i.source), missing.map((i) => i.dedupeKey)],
      );
      for (const row of again.rows)
        byKey.set(`${row.tenant_id}\u0000${row.source}\u0000${row.dedupe_key}`, {
          messageId: row.message_id,
          duplicate: true,
          published: row.published,
        });
    }
    return items.map((i) => {
      const found = byKey.get(keyOf(i));
      if (!found) throw new Error(`dedupe claim of ${i.dedupeKey} vanished`);
      return found;
    });
  },
  /** Notes that these messages are on the bus (a duplicate of them is answered without publishing). */
  async markPublished(q: Queryable, messageIds: readonly string[]): Promise<void> {
    if (messageIds.length === 0) return;
    await q.query("UPDATE integration.messages SET published = true WHERE message_id = ANY($1::uuid[]) AND NOT published", [messageIds]);
  },
  /** The workflows fed by any of these apps or MQTT sources, or with any of these ids. */
  async workflowsFeeding(q: Queryable, by: { appIds: string[]; mqttIds: string[]; workflowIds: string[] }): Promise<WorkflowRow[]> {
    const r = await q.query(
      "SELECT * FROM integration.workflows WHERE source_app_id = ANY($1::text[]) OR source_mqtt_id = ANY($2::text[]) OR id = ANY($3::text[])",
      [by.appIds, by.mqttIds, by.workflowIds],
    );
    return r.rows.map(workflow);
  },

  /** Writes (or advances) an execution entry; "pending" never replaces an outcome (a repeated fan-out). */
  async recordExecution(q: Queryable, e: Omit<ExecutionRow, "updatedAt" | "tick" | "id"> & { id: string; at: Date }): Promise<void> {
    await q.query(
      `INSERT INTO integration.executions (id, tenant_id, message_id, workflow_id, workflow_version, target, destination_id, step, status, attempts, latency_ms, error, detail, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb, $14)
       ON CONFLICT (message_id, workflow_id, target) DO UPDATE SET status = EXCLUDED.status, attempts = GREATEST(integration.executions.attempts, EXCLUDED.attempts),
         latency_ms = EXCLUDED.latency_ms, error = EXCLUDED.error, detail = EXCLUDED.detail, updated_at = EXCLUDED.updated_at,
         tick = nextval('integration.execution_ticks')
       WHERE EXCLUDED.status <> 'pending' OR integration.executions.status = 'pending'`,
      [
        e.id,
        e.tenantId,
        e.messageId,
        e.workflowId,
        e.workflowVersion,
        e.target,
        e.destinationId,
        e.step,
        e.status,
        e.attempts,
        e.latencyMs,
        e.error,
        e.detail ? JSON.stringify(e.detail) : null,
        e.at,
      ],
    );
  },
  async executions(
    q: Queryable,
    f: {
      tenantId: string;
      workflowId?: string;
      messageId?: string;
      destinationId?: string;
      status?: string;
      limit: number;
      before?: { at: Date; id: string };
    },
  ): Promise<ExecutionRow[]> {
    const where = ["tenant_id = $1"];
    const params: unknown[] = [f.tenantId];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace("?", `$${params.length}`));
    };
    if (f.workflowId) add("workflow_id = ?", f.workflowId);
    if (f.messageId) add("message_id::text = ?", f.messageId);
    if (f.destinationId) add("destination_id = ?", f.destinationId);
    if (f.status) add("status = ?", f.status);
    if (f.before) {
      params.push(f.before.at, f.before.id);
      where.push(`(updated_at, id) < ($${params.length - 1}, $${params.length}::uuid)`);
    }
    params.push(f.limit);
    const r = await q.query(
      `SELECT * FROM integration.executions WHERE ${where.join(" AND ")} ORDER BY updated_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return r.rows.map(execution);
  },
  async executionsAfter(q: Queryable, tenantId: string, tick: bigint, workflowId?: string): Promise<ExecutionRow[]> {
    const r = workflowId
      ? await q.query(
          "SELECT * FROM integration.executions WHERE tenant_id = $1 AND tick > $2 AND workflow_id = $3 ORDER BY tick LIMIT 500",
          [tenantId, tick, workflowId],
        )
      : await q.query("SELECT * FROM integration.executions WHERE tenant_id = $1 AND tick > $2 ORDER BY tick LIMIT 500", [tenantId, tick]);
    return r.rows.map(execution);
  },
  async lastTick(q: Queryable): Promise<bigint> {
    const r = await q.query<{ t: bigint | null }>("SELECT max(tick) AS t FROM integration.executions");
    return r.rows[0]?.t !== null && r.rows[0]?.t !== undefined ? BigInt(r.rows[0].t) : 0n;
  },
  /** Drops dedupe claims past the window and execution entries past their workflow's retention. */
  async sweep(q: Queryable, now: Date, windowMs: number): Promise<void> {
    await q.query("DELETE FROM integration.messages WHERE accepted_at < $1", [new Date(now.getTime() - windowMs)]);
    await q.query(
      `DELETE FROM integration.executions e USING integration.workflows w
       WHERE e.workflow_id = w.id AND e.updated_at < $1::timestamptz - make_interval(hours => w.retention_hours)`,
      [now],
    );
  },
};
