import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Saga,
  SagaErrorSchema,
  SagaSchema,
  SagaStatus,
  SagaStep_State,
  SagaStepSchema,
} from "../../gen/nexus/eventstore/v1/event_store_service_pb.js";
import type { SagaStatus as KernelSagaStatus, SagaState, SagaSummary } from "../kernel/sagas/index.js";

const STATUS: Record<KernelSagaStatus, SagaStatus> = {
  running: SagaStatus.RUNNING,
  compensating: SagaStatus.COMPENSATING,
  completed: SagaStatus.COMPLETED,
  compensated: SagaStatus.COMPENSATED,
  failed: SagaStatus.FAILED,
};

/** A step's state from the saga's folded stream. */
function stepState(s: SagaState, step: string): SagaStep_State {
  if (s.inFlight === step || s.inFlight === `compensate:${step}`) return SagaStep_State.RUNNING;
  if (s.compensated.includes(step)) return SagaStep_State.COMPENSATED;
  if (s.completed.includes(step)) return SagaStep_State.COMPLETED;
  return SagaStep_State.FAILED;
}

/** A saga's full state as GetSaga answers it: steps in the order they started, every failed attempt. */
export function sagaMessage(s: SagaState): Saga {
  const message = sagaSummaryMessage(s);
  message.deadline = timestampFromDate(s.deadline);
  message.inFlight = s.inFlight ?? "";
  message.pointOfNoReturnPassed = s.irreversible;
  message.reason = s.reason ?? "";
  message.lastError = s.lastError ?? "";
  message.steps = s.started.map((name) =>
    create(SagaStepSchema, {
      name,
      state: stepState(s, name),
      attempts: s.attempts[name] ?? 0,
      compensationAttempts: s.attempts[`compensate:${name}`] ?? 0,
      pointOfNoReturn: s.pointOfNoReturnSteps.includes(name),
    }),
  );
  message.errors = s.errors.map((e) =>
    create(SagaErrorSchema, {
      step: e.step,
      attempt: e.attempt,
      compensation: e.compensation,
      error: e.error,
      occurredAt: timestampFromDate(e.at),
    }),
  );
  return message;
}

/** A saga as ListSagas answers it (no steps or errors). */
export function sagaSummaryMessage(s: SagaSummary | SagaState): Saga {
  return create(SagaSchema, {
    sagaId: s.sagaId,
    name: s.name,
    status: STATUS[s.status],
    tenantId: s.tenantId ?? "",
    startedAt: timestampFromDate(s.startedAt),
    updatedAt: timestampFromDate(s.updatedAt),
    version: BigInt(s.version),
  });
}
