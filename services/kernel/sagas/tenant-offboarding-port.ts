import type { SagaState } from "./saga.js";

/** A request to start offboarding a tenant (StartTenantOffboarding). */
export interface StartTenantOffboarding {
  tenantId: string;
  /** Why (recorded in the suspension, the saga's input and the audit trail). */
  reason: string;
  /** The caller (an API key id): the actor of SagaStarted, hence of the audit entry. */
  actor?: string;
}

/** What {@link TenantOffboardingStarter.start} returns. */
export interface TenantOffboardingStart {
  /** The saga right after its start (or as it is, when it already existed). */
  saga: SagaState;
  /** False when an offboarding of the tenant that was running, completed or failed was returned. */
  started: boolean;
}

/**
 * Starts tenant offboarding sagas for the API (EventStoreService.StartTenantOffboarding). The
 * saga needs every service's data deleters, which only the runtime assembles (the service
 * registry), so the runtime implements this port (services/runtime/tenant-offboarding.ts) and
 * hands it to the services in their context; a service calls it without knowing the others.
 *
 * `start` refuses an unknown tenant (NOT_FOUND) and a tenant under a legal hold
 * (LEGAL_HOLD_ACTIVE), returns an existing offboarding of the tenant unless every earlier one
 * was compensated, else records the saga's start and drives it in the background (under a
 * saga lease, so the resumer of another process takes over if this one dies).
 */
export interface TenantOffboardingStarter {
  start(request: StartTenantOffboarding): Promise<TenantOffboardingStart>;
}
