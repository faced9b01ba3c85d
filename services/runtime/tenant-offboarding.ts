import type { Logger } from "pino";
import { createPostgresAuthStore } from "../auth/adapters/postgres.js";
import { tenantAggregate } from "../auth/auth-aggregates.js";
import { pauseTenantWorkflows, resumeTenantWorkflows } from "../integration/tenant-workflows.js";
import { executeCommand, rehydrate } from "../kernel/commands/index.js";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import { domainError, errorReason } from "../kernel/errors.js";
import { leaseOwnerId } from "../kernel/events/checkpoint-lease.js";
import { TENANT_OFFBOARDING_SAGA } from "../kernel/events/offboarded-tenants.js";
import { assertTenantNotHeld } from "../kernel/governance/index.js";
import { createKeyring, type Keyring, resolveMasterKeys } from "../kernel/keyring/index.js";
import {
  listSagas,
  runSaga,
  type SagaDefinition,
  type SagaState,
  type StartTenantOffboarding,
  sagaStatus,
  startSaga,
  type TenantOffboardingStart,
  type TenantOffboardingStarter,
} from "../kernel/sagas/index.js";
import type { ServiceDefinition } from "../kernel/service/index.js";
import { shredListRecorder } from "./backup.js";
import { SERVICES } from "./service-registry.js";

/**
 * Tenant offboarding as a saga (issue 18, R10): each step is recorded on the saga's stream and
 * undone, newest first, if a later step fails before the point of no return (the shred).
 *
 *   1. `suspend-keys`       the tenant is suspended: every one of its API keys is refused
 *                           (TENANT_SUSPENDED). Undo: resume — only when the suspension is this
 *                           saga's own (a tenant suspended before offboarding stays suspended).
 *   2. `stop-workflows`     every running integration workflow of the tenant is paused (its
 *                           messages wait on the bus; replicas stop their consumers within 2 s).
 *                           Undo: resume the workflows this saga paused (not ones paused before).
 *   3. `check-legal-hold`   the hook {@link OffboardingHooks.checkLegalHold}: throws when the
 *                           tenant's data is under a legal hold, which (after the retries)
 *                           compensates the saga. Legal holds are not implemented here; the
 *                           default hook finds none.
 *   4. `shred-keys`         `keyring.shred(tenant)`: every data key of the tenant is destroyed,
 *                           so its sealed data never opens again. POINT OF NO RETURN.
 *   5. `delete-data`        checks legal holds again (one placed since step 3 stops the saga,
 *                           `failed`), then runs every service's data deleter
 *                           (`defineService({ dataDeleters })`, {@link serviceDataDeleters}):
 *                           each deletes the tenant's rows from its own schema; what a service
 *                           keeps on purpose is in docs/event-sourcing.md, "Tenant offboarding".
 *
 * The suspension refuses the tenant's API keys, not its integration sender-app keys: messages
 * sent to a paused workflow are still accepted and wait (until the data is deleted).
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

export const TENANT_OFFBOARDING = TENANT_OFFBOARDING_SAGA;

const suspensionReason = (sagaId: string, reason: string) => `offboarding (saga ${sagaId}): ${reason}`;

/**
 * Every service's data deleters (registry order): what `delete-data` runs unless
 * {@link OffboardingHooks.deleteData} replaces them (tests).
 */
export function serviceDataDeleters(db: Database, services: readonly ServiceDefinition[] = SERVICES): TenantDataDeleter[] {
  return services.flatMap((service) =>
    (service.dataDeleters ?? []).map((deleter) => async (tenantId: string) => {
      try {
        await deleter.deleteTenantData(db, tenantId);
      } catch (err) {
        throw new Error(`${deleter.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
    }),
  );
}

/** The offboarding saga over this database and keyring. */
export function tenantOffboardingSaga(
  db: Database,
  keyring: Keyring,
  hooks: OffboardingHooks = {},
  options: { timeoutMs?: number; maxAttempts?: number; retryDelayMs?: number } = {},
): SagaDefinition<OffboardingInput> {
  const tenants = () => tenantAggregate(createPostgresAuthStore(db).tenants);
  // The legal-hold check again, right before deleting (see delete-data).
  const checkLegalHold =
    hooks.checkLegalHold ?? ((tenantId: string) => db.transaction((tx) => assertTenantNotHeld(tx, tenantId, "offboard the tenant")));
  const deleters = hooks.deleteData ?? serviceDataDeleters(db);
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
        name: "stop-workflows",
        async run({ sagaId, input }) {
          await pauseTenantWorkflows(db, input.tenantId, `saga:${sagaId}`);
        },
        async compensate({ sagaId, input }) {
          await resumeTenantWorkflows(db, input.tenantId, `saga:${sagaId}`);
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
          // A hold placed after check-legal-hold still keeps the rows: past the shred the saga
          // cannot be undone, so it ends `failed` for an operator (and the hold's owner) to decide.
          await checkLegalHold(input.tenantId);
          for (const deleter of deleters) await deleter(input.tenantId);
        },
      },
    ],
  };
}

/** NOT_FOUND unless the tenant exists (its event-sourced aggregate has a state). */
async function assertTenantExists(db: Database, tenantId: string): Promise<void> {
  const tenant = await rehydrate(db, tenantAggregate(createPostgresAuthStore(db).tenants), tenantId);
  if (!tenant.state) throw domainError("NOT_FOUND", `no tenant ${tenantId}`, { tenant_id: tenantId });
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
  // The lease makes a server that would resume the same saga (after a crash) wait for this run.
  const lease = { owner: leaseOwnerId(), ttlMs: config.sagaLeaseMs, waitForLease: true };
  const sagaId = input.sagaId ?? `offboard-${input.tenantId}-${Date.now()}`;
  const existing = await sagaStatus(db, sagaId);
  if (!existing) {
    await assertTenantExists(db, input.tenantId);
    await startSaga(db, def, { sagaId, input: { tenantId: input.tenantId, reason: input.reason }, tenantId: input.tenantId });
  }
  return runSaga(db, def, sagaId, { lease });
}

/** A {@link TenantOffboardingStarter} with the background runs it started. */
export interface RunningOffboardingStarter extends TenantOffboardingStarter {
  /** Resolves when every background run started so far has stopped (tests). */
  idle(): Promise<void>;
  /** Stops the background runs at their next transition (releasing their leases) and waits. */
  close(): Promise<void>;
}

/**
 * The runtime's {@link TenantOffboardingStarter} (StartTenantOffboarding): checks the tenant
 * and its legal holds, returns an offboarding of the tenant that is running, completed or
 * failed (only a compensated one lets a new one start), else starts saga
 * `offboard-<tenant>-<n>` (n = the tenant's offboardings so far + 1, so two concurrent calls
 * compute the same id and the second gets the first's saga) and drives it in the background
 * under a lease. If this process stops or dies, the resumer of a process hosting auth takes the
 * saga over once the lease is free.
 */
export function tenantOffboardingStarter(options: {
  db: Database;
  def: SagaDefinition<OffboardingInput>;
  leaseMs: number;
  logger: Logger;
}): RunningOffboardingStarter {
  const { db, def, logger } = options;
  const lease = { owner: leaseOwnerId(), ttlMs: options.leaseMs };
  const stop = new AbortController();
  const runs = new Set<Promise<unknown>>();
  const existing = async (tenantId: string): Promise<{ count: number; current?: SagaState }> => {
    const sagas = await listSagas(db, { tenantId, name: TENANT_OFFBOARDING, limit: 1000 });
    const open = sagas.find((s) => s.status !== "compensated");
    const current = open ? await sagaStatus(db, open.sagaId) : undefined;
    return { count: sagas.length, ...(current ? { current } : {}) };
  };
  const drive = (sagaId: string) => {
    const run = runSaga(db, def, sagaId, { lease, signal: stop.signal })
      .then((s) => logger.info({ sagaId, status: s.status }, "tenant offboarding saga stopped"))
      .catch((err: unknown) => logger.warn({ err, sagaId }, "tenant offboarding saga stopped on an error; the resumer retries it"))
      .finally(() => runs.delete(run));
    runs.add(run);
  };
  return {
    async start(request: StartTenantOffboarding): Promise<TenantOffboardingStart> {
      const { tenantId } = request;
      await assertTenantExists(db, tenantId);
      const before = await existing(tenantId);
      if (before.current) return { saga: before.current, started: false };
      await db.transaction((tx) => assertTenantNotHeld(tx, tenantId, "offboard the tenant"));
      const sagaId = `offboard-${tenantId}-${before.count + 1}`;
      try {
        const saga = await startSaga(db, def, {
          sagaId,
          input: { tenantId, reason: request.reason },
          tenantId,
          ...(request.actor ? { origin: { actor: request.actor } } : {}),
        });
        drive(sagaId);
        return { saga, started: true };
      } catch (err) {
        // Another call started the same offboarding a moment ago: that one is the answer.
        const raced = errorReason(err) === "ALREADY_EXISTS" ? await sagaStatus(db, sagaId) : undefined;
        if (raced) return { saga: raced, started: false };
        throw err;
      }
    },
    async idle() {
      while (runs.size > 0) await Promise.all([...runs]);
    },
    async close() {
      stop.abort();
      await Promise.all([...runs]);
    },
  };
}
