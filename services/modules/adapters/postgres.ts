import {
  ModuleCredentialDeletedSchema,
  ModuleCredentialSetSchema,
  ModuleVersionActivatedSchema,
  ModuleVersionReviewedSchema,
  ModuleVersionSubmittedSchema,
} from "../../../gen/nexus/events/v1/modules_events_pb.js";
import type { Aggregate } from "../../kernel/commands/index.js";
import type { Queryable, Tx } from "../../kernel/db/ports.js";
import { domainError } from "../../kernel/errors.js";
import { eventOf } from "../../kernel/events/protobuf-event.js";
import {
  type CredentialCommand,
  type CredentialEvent,
  type CredentialsState,
  decideCredentials,
  evolveCredentials,
} from "../domain/credentials.js";
import { decide, evolve, type ModuleCommand, type ModuleEvent, type ModuleKey, type ModuleState } from "../domain/module.js";

/**
 * The modules schema as the command helper and the handler use it: the module and
 * credential-set aggregates (state rows saved with their stream version, events as protobuf
 * payloads of proto/nexus/events/v1/modules_events.proto) and the read queries.
 */

/** Event stream of a module. */
export const moduleStreamId = (key: ModuleKey): string => `module-${key.tenantId}-${key.name}`;
/** Event stream of a tenant's credential set. */
export const credentialsStreamId = (tenantId: string): string => `module_credentials-${tenantId}`;

const stale = (stream: string) =>
  domainError("CONCURRENCY_CONFLICT", `${stream} changed while the command ran: retry`, { stream_id: stream });

/** The module aggregate. */
export const moduleAggregate: Aggregate<ModuleState, ModuleEvent, ModuleCommand, ModuleKey> = {
  streamId: moduleStreamId,
  async load(tx, key) {
    const r = await tx.query<{ state: ModuleState; stream_version: number }>(
      "SELECT state, stream_version FROM modules.modules WHERE tenant_id = $1 AND name = $2 FOR UPDATE",
      [key.tenantId, key.name],
    );
    const row = r.rows[0];
    return row ? { state: row.state, version: row.stream_version } : { state: undefined, version: 0 };
  },
  decide,
  evolve,
  async save(tx, key, state, expectedVersion, version) {
    const r =
      expectedVersion === 0
        ? await tx.query(
            "INSERT INTO modules.modules (tenant_id, name, stream_version, active_version, state) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            [key.tenantId, key.name, version, state.activeVersion, JSON.stringify(state)],
          )
        : await tx.query(
            "UPDATE modules.modules SET stream_version = $3, active_version = $4, state = $5, updated_at = now() WHERE tenant_id = $1 AND name = $2 AND stream_version = $6",
            [key.tenantId, key.name, version, state.activeVersion, JSON.stringify(state), expectedVersion],
          );
    if (r.rowCount !== 1) throw stale(moduleStreamId(key));
  },
  toEvent(event, state, key) {
    switch (event.type) {
      case "VersionSubmitted": {
        const m = event.record.manifest as { credentials?: string[]; egressHosts?: string[] };
        return eventOf(ModuleVersionSubmittedSchema, {
          tenantId: key.tenantId,
          name: key.name,
          version: event.record.version,
          codeSha256: event.record.codeSha256,
          testsPassed: event.record.testResults.filter((t) => t.passed).length,
          testsFailed: event.record.testResults.filter((t) => !t.passed).length,
          status: event.record.status,
          credentials: m.credentials ?? [],
          egressHosts: m.egressHosts ?? [],
        });
      }
      case "VersionReviewed":
        return eventOf(ModuleVersionReviewedSchema, {
          tenantId: key.tenantId,
          name: key.name,
          version: event.version,
          approved: event.approved,
          feedback: event.feedback,
        });
      case "VersionActivated":
        return eventOf(ModuleVersionActivatedSchema, {
          tenantId: state.tenantId,
          name: key.name,
          version: event.version,
          previousVersion: event.previousVersion,
        });
      default: {
        const _exhaustive: never = event;
        return _exhaustive;
      }
    }
  },
};

/** The credential set of a tenant (key: tenant id). */
export const credentialsAggregate: Aggregate<CredentialsState, CredentialEvent, CredentialCommand, string> = {
  streamId: credentialsStreamId,
  async load(tx, tenantId) {
    const r = await tx.query<{ entries: CredentialsState["entries"]; stream_version: number }>(
      "SELECT entries, stream_version FROM modules.credentials WHERE tenant_id = $1 FOR UPDATE",
      [tenantId],
    );
    const row = r.rows[0];
    return row ? { state: { entries: row.entries }, version: row.stream_version } : { state: undefined, version: 0 };
  },
  decide: (command, state) => decideCredentials(command, state),
  evolve: (state, event) => evolveCredentials(state, event),
  async save(tx, tenantId, state, expectedVersion, version) {
    const r =
      expectedVersion === 0
        ? await tx.query(
            "INSERT INTO modules.credentials (tenant_id, stream_version, entries) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            [tenantId, version, JSON.stringify(state.entries)],
          )
        : await tx.query("UPDATE modules.credentials SET stream_version = $2, entries = $3 WHERE tenant_id = $1 AND stream_version = $4", [
            tenantId,
            version,
            JSON.stringify(state.entries),
            expectedVersion,
          ]);
    if (r.rowCount !== 1) throw stale(credentialsStreamId(tenantId));
  },
  // The sealed value stays in the state row: events name the credential only.
  toEvent: (event, _state, tenantId) =>
    event.type === "CredentialSet"
      ? eventOf(ModuleCredentialSetSchema, { tenantId, name: event.name })
      : eventOf(ModuleCredentialDeletedSchema, { tenantId, name: event.name }),
};

/** A module as stored. */
export async function readModule(db: Queryable, key: ModuleKey): Promise<ModuleState | undefined> {
  const r = await db.query<{ state: ModuleState }>("SELECT state FROM modules.modules WHERE tenant_id = $1 AND name = $2", [
    key.tenantId,
    key.name,
  ]);
  return r.rows[0]?.state;
}

/** One page of a tenant's modules by name, after `after`. */
export async function listModules(db: Queryable, tenantId: string, after: string | undefined, limit: number): Promise<ModuleState[]> {
  const r = await db.query<{ state: ModuleState }>(
    "SELECT state FROM modules.modules WHERE tenant_id = $1 AND name > $2 ORDER BY name LIMIT $3",
    [tenantId, after ?? "", limit],
  );
  return r.rows.map((row) => row.state);
}

/** A tenant's sealed credentials. */
export async function readCredentials(db: Queryable, tenantId: string): Promise<CredentialsState["entries"]> {
  const r = await db.query<{ entries: CredentialsState["entries"] }>("SELECT entries FROM modules.credentials WHERE tenant_id = $1", [
    tenantId,
  ]);
  return r.rows[0]?.entries ?? {};
}

export type { Tx };
