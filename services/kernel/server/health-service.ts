import { create } from "@bufbuild/protobuf";
import type { ConnectRouter, HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { HealthCheckRequest, HealthCheckResponse } from "../../../gen/grpc/health/v1/health_pb.js";
import { Health, HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as Status } from "../../../gen/grpc/health/v1/health_pb.js";
import type { ServingSnapshot, ServingState } from "./serving-state.js";

/** Options of {@link registerHealthService}. */
export interface HealthServiceOptions {
  /** How often a Watch stream re-runs readiness checks while nothing else changes; default 5 s. */
  watchIntervalMs?: number;
}

function statusOf(snapshot: ServingSnapshot, service: string): Status {
  const serving = snapshot.serving(service);
  if (serving === undefined) return Status.SERVICE_UNKNOWN;
  return serving ? Status.SERVING : Status.NOT_SERVING;
}

function response(status: Status): HealthCheckResponse {
  return create(HealthCheckResponseSchema, { status });
}

/** Check's answers, one per status, made once (nothing downstream changes an answer message). */
const CHECK_ANSWERS = new Map<Status, HealthCheckResponse>(
  [Status.SERVING, Status.NOT_SERVING, Status.SERVICE_UNKNOWN].map((s) => [s, response(s)]),
);

function checkAnswer(snapshot: ServingSnapshot, service: string): HealthCheckResponse {
  const status = statusOf(snapshot, service);
  return CHECK_ANSWERS.get(status) ?? response(status);
}

/**
 * Registers the standard grpc.health.v1.Health service over the server's {@link ServingState}:
 * per-service status (SERVING once the server listens; NOT_SERVING while draining or while a
 * readiness check of the service fails), "" for the server as a whole, NOT_FOUND (Check) or
 * SERVICE_UNKNOWN (Watch) for a service it does not know. Watch streams end after reporting
 * NOT_SERVING when the server drains, so they do not hold up shutdown.
 */
export function registerHealthService(router: ConnectRouter, state: ServingState, options: HealthServiceOptions = {}): void {
  const interval = options.watchIntervalMs ?? 5000;
  router.service(Health, {
    // Answered from the last evaluation while it is recent (ServingState.recent: at most
    // 250 ms old, dropped at once on a lifecycle change): probes and load balancers poll this,
    // and evaluating every check per call was a measurable share of its cost.
    check(req: HealthCheckRequest) {
      if (!state.knows(req.service)) {
        throw new ConnectError(`unknown service "${req.service}"`, Code.NotFound);
      }
      const recent = state.recent();
      if (recent !== undefined) return checkAnswer(recent, req.service);
      return state.evaluate().then((snapshot) => checkAnswer(snapshot, req.service));
    },
    async list() {
      const snapshot = await state.evaluate();
      const statuses: Record<string, HealthCheckResponse> = { "": response(statusOf(snapshot, "")) };
      for (const s of state.services) statuses[s] = response(statusOf(snapshot, s));
      return { statuses };
    },
    async *watch(req: HealthCheckRequest, ctx: HandlerContext) {
      let last: Status | undefined;
      while (!ctx.signal.aborted) {
        const snapshot = await state.evaluate();
        // The lifecycle moved while checks ran (e.g. close() began): look again at once.
        if (snapshot.lifecycle !== state.lifecycle) continue;
        const status = state.knows(req.service) ? statusOf(snapshot, req.service) : Status.SERVICE_UNKNOWN;
        if (status !== last) {
          last = status;
          yield response(status);
        }
        if (snapshot.lifecycle === "draining" || snapshot.lifecycle === "closed") return;
        await state.waitForChange(interval, ctx.signal);
      }
    },
  });
}
