import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Logger } from "pino";
import {
  RunCancelledSchema,
  RunCancelRequestedSchema,
  RunCompletedSchema,
  RunFailedSchema,
} from "../../../gen/nexus/events/v1/agent_events_pb.js";
import { recordFacts } from "../../kernel/commands/index.js";
import type { TenantPrincipal } from "../../kernel/context.js";
import type { Database } from "../../kernel/db/ports.js";
import { readStream } from "../../kernel/events/event-store.js";
import type { EventBus, Observation } from "../../kernel/events/ports.js";
import { eventOf, payloadOf } from "../../kernel/events/protobuf-event.js";
import type { ActiveRuns } from "./active-runs.js";
import { runStreamId } from "./run-events.js";

/** Subject (relative to the prefix) of cancel requests for runs on other replicas. */
export const CANCEL_REQUESTED_SUBJECT = "agent.run_cancel_requested";

/** Types of the events that end a run's stream. */
export const ENDED: ReadonlySet<string> = new Set([RunCompletedSchema.typeName, RunFailedSchema.typeName, RunCancelledSchema.typeName]);

/** Options of {@link RunCancellation}. */
export interface RunCancellationOptions {
  db: Database;
  /** Absent: cancellation stays within this replica. */
  bus?: EventBus;
  activeRuns: ActiveRuns;
  clock: () => Date;
  logger: Logger;
}

/**
 * CancelRun across replicas. A run is served by one replica, but CancelRun may reach any:
 * the replica that serves the run cancels it at once (its registry of active runs); any other
 * replica looks at the run's event stream and, if the run started and has not ended, appends
 * RunCancelRequested. Every agent replica observes those events (a per-process fan-out on the
 * bus) and cancels the run if it serves it.
 *
 * Limits: a run is visible to other replicas once its RunStarted is stored (once its first
 * token is written, at the latest RUN_STARTED_LATEST_MS after acceptance); CancelRun sent to
 * another replica in that window answers false. A run that ends while the request travels
 * simply ends (the answer said true). When a replica dies mid-run its stream has no end, and
 * CancelRun answers true with nothing left to cancel.
 */
export class RunCancellation {
  private observation: Observation | undefined;

  constructor(private readonly options: RunCancellationOptions) {}

  /** Starts observing cancel requests (no-op without a bus). */
  async start(): Promise<void> {
    const { bus, activeRuns, logger } = this.options;
    if (bus === undefined || this.observation) return;
    this.observation = await bus.observe({
      subject: CANCEL_REQUESTED_SUBJECT,
      handler(event) {
        const request = payloadOf(RunCancelRequestedSchema, event);
        if (activeRuns.cancel(request.tenantId, request.requestId)) {
          logger.info({ request_id: request.requestId, tenant_id: request.tenantId }, "run cancelled at the request of another replica");
        }
      },
      onStateChange(live) {
        if (!live) logger.warn("run cancel feed lost: CancelRun reaches only runs of the replica it is sent to until it is back");
      },
    });
  }

  /** Stops observing. */
  async stop(): Promise<void> {
    await this.observation?.stop();
    this.observation = undefined;
  }

  /**
   * Cancels the tenant's run: here when this replica serves it, else through the bus. True
   * when the run was in progress (see the limits above).
   */
  async cancel(principal: TenantPrincipal, requestId: string): Promise<boolean> {
    const { activeRuns, db, bus, clock } = this.options;
    if (activeRuns.cancel(principal.tenantId, requestId)) return true;
    if (bus === undefined) return false;
    const streamId = runStreamId(principal.tenantId, requestId);
    const events = await readStream(db, streamId);
    if (events.length === 0 || events.some((e) => ENDED.has(e.type))) return false;
    await db.transaction((tx) =>
      recordFacts(
        tx,
        streamId,
        [
          eventOf(RunCancelRequestedSchema, {
            tenantId: principal.tenantId,
            requestId,
            requestedBy: principal.keyId,
            requestedAt: timestampFromDate(clock()),
          }),
        ],
        { metadata: { tenantId: principal.tenantId, actor: principal.keyId } },
      ),
    );
    return true;
  }
}
