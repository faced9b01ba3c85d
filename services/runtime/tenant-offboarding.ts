import { createPostgresAuthStore } from "../auth/adapters/postgres.js";
import { tenantAggregate } from "../auth/auth-aggregates.js";
import { executeCommand, rehydrate } from "../kernel/commands/index.js";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError } from "../kernel/errors.js";
import { assertTenantNotHeld } from "../kernel/governance/index.js";
import { createKeyring, type Keyring, resolveMasterKeys } from "../kernel/keyring/index.js";
import { runSaga, type SagaDefinition, type SagaState, sagaStatus, startSaga } from "../kernel/sagas/index.js";
import { shredListRecorder } from "./backup.js";

/**
 * Tenant offboarding as a saga (issue 18, R10): each step is recorded on the saga's stream and
 * undone, newest first, if a later step fails before the point of no return (the shred).
 *
 *   1. `suspend-keys`       the tenant is suspended: every one of its API keys is refused
 *                           (TENANT_SUSPENDED). Undo: resume — only when the suspension is this
 *                           saga's own (a tenant suspended before offboarding stays suspended).
 *   2. `check-legal-hold`   the hook {@link OffboardingHooks.checkLegalHold}: throws when the
 *                           tenant's data is under a legal hold, which (after the retries)
 *                           compensates the saga. Legal holds are not implemented here; the
 *                           default hook finds none.
 *   3. `shred-keys`         `keyring.shred(tenant)`: every data key of the tenant is destroyed,
 *                           so its sealed data never opens again. POINT OF NO RETURN.
 *   4. `delete-data`        runs the given {@link OffboardingHooks.deleteData} deleters, one per
 *                           service that holds tenant rows. None is registered by the services
 *                           yet (see docs/event-sourcing.md, "Tenant offboarding").
 *
 * Integration workflows are not stopped by a step: services/integration offers no way to stop or
 * disable a workflow today (its workflows have no enabled state); the suspension refuses the
 * tenant's API keys, not the integration's sender-app keys.
 */

/** The input of an offboarding saga. */
export interface OffboardingInput {
  tenantId: string;
  /** Why (recorded in the suspension). */
  reason: string;
}

/** A service's deletion of one tenant's rows (idempotent: run again after a crash). */
export type TenantDataDeleter = (tenantId: string) => Promise<void>;

/** What the offboarding saga calls besides auth and the keyring. */
export interface OffboardingHooks {
  /**
   * LEGAL HOLD CHECK — the step where a legal hold (governance) stops offboarding: throw an
   * Error naming the hold to refuse. Default: the kernel's legal holds (`assertTenantNotHeld`).
   */
  checkLegalHold?: (tenantId: string) => Promise<void>;
  /** The deleters run by `delete-data`, in order. */
  deleteData?: readonly TenantDataDeleter[];
}

/** The name of the step that checks legal holds (for the governance service to find). */
export const LEGAL_HOLD_STEP = "check-legal-hold";

export const TENANT_OFFBOARDING = "tenant-offboarding";

const suspensionReason = (sagaId: string, reason: string) => `offboarding (saga ${sagaId}): ${reason}`;

/** The offboarding saga over this database and keyring. */
export function tenantOffboardingSaga(
  db: Database,
  keyring: Keyring,
  hooks: OffboardingHooks = {},
  options: { timeoutMs?: number; maxAttempts?: number; retryDelayMs?: number } = {},
): SagaDefinition<OffboardingInput> {
  const tenants = () => tenantAggregate(createPostgresAuthStore(db).tenants);
  return {
    name: TENANT_OFFBOARDING,
    timeoutMs: options.timeoutMs ?? 10 * 60_000,
    maxAttempts: options.maxAttempts ?? 3,
    retryDelayMs: options.retryDelayMs ?? 500,
    steps: [
      {
        name: "suspend-keys",
        async run({ sagaId, input }) {
          const reason = suspensionReason(sagaId, input.reason);
          await executeCommand(db, tenants(), input.tenantId, { type: "SuspendTenant", reason, now: new Date() });
        },
        async compensate({ sagaId, input }) {
          const state = await rehydrate(db, tenants(), input.tenantId);
          if (state.state?.status !== "suspended" || state.state.suspensionReason !== suspensionReason(sagaId, input.reason)) return;
          await executeCommand(db, tenants(), input.tenantId, { type: "ResumeTenant", now: new Date() });
        },
      },
      {
        name: LEGAL_HOLD_STEP,
        async run({ input }) {
          // Default: the kernel's legal holds (services/kernel/governance): any active hold of
          // the tenant refuses offboarding (LEGAL_HOLD_ACTIVE), and the saga undoes the suspension.
          const check =
            hooks.checkLegalHold ??
            ((tenantId: string) => db.transaction((tx) => assertTenantNotHeld(tx, tenantId, "offboard the tenant")));
          await check(input.tenantId);
        },
      },
      {
        name: "shred-keys",
        pointOfNoReturn: true,
        async run({ input }) {
          await keyring.shred(input.tenantId);
        },
      },
      {
        name: "delete-data",
        async run({ input }) {
          for (const deleter of hooks.deleteData ?? []) await deleter(input.tenantId);
        },
      },
    ],
  };
}

/**
 * Starts (or, with the id of an unfinished one, resumes) the offboarding of a tenant and drives
 * it to its end, with the configured master keys (what `nexus tenants offboard` runs).
 */
export async function offboardTenant(
  db: Database,
  config: NexusConfig,
  input: OffboardingInput & { sagaId?: string },
  hooks: OffboardingHooks = {},
): Promise<SagaState> {
  const masterKeys = await resolveMasterKeys({
    fromEnv: config.masterKeys,
    file: config.masterKeyFile,
    embedded: db.dialect === "pglite",
    dataDir: config.dataDir,
  });
  // With a backup directory configured, the shred is on the backups' shred list at once.
  const onShredded = config.backupDir && masterKeys ? shredListRecorder(config.backupDir, masterKeys) : undefined;
  const def = tenantOffboardingSaga(db, createKeyring({ db, masterKeys, ...(onShredded ? { onShredded } : {}) }), hooks);
  const sagaId = input.sagaId ?? `offboard-${input.tenantId}-${Date.now()}`;
  const existing = await sagaStatus(db, sagaId);
  if (!existing) {
    const current = await rehydrate(db, tenantAggregate(createPostgresAuthStore(db).tenants), input.tenantId);
    if (!current.state) throw domainError("NOT_FOUND", `no tenant ${input.tenantId}`, { tenant_id: input.tenantId });
    await startSaga(db, def, { sagaId, input: { tenantId: input.tenantId, reason: input.reason }, tenantId: input.tenantId });
  }
  return runSaga(db, def, sagaId);
}
