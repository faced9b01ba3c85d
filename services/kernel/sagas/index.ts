/** The kernel's saga runtime (R10): multi-step processes recorded on their own event stream. */
export {
  foldSaga,
  type ListSagasOptions,
  listSagas,
  MAX_SAGA_ERRORS,
  type RunSagaOptions,
  resumeSagas,
  runSaga,
  SAGA_EVENTS,
  SAGA_STREAM_PREFIX,
  type SagaAttemptError,
  type SagaDefinition,
  type SagaState,
  type SagaStatus,
  type SagaStep,
  type SagaStepContext,
  type SagaSummary,
  type StartSagaOptions,
  sagaStatus,
  sagaStreamId,
  startSaga,
  unfinishedSagas,
} from "./saga.js";
export { claimSagaLease, releaseSagaLease, type SagaLease, type SagaLeaseHolder, sagaLeaseHolder } from "./saga-lease.js";
export type { StartTenantOffboarding, TenantOffboardingStart, TenantOffboardingStarter } from "./tenant-offboarding-port.js";
