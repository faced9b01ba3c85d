import { WorkflowChangedSchema } from "../../../gen/nexus/events/v1/integration_events_pb.js";
import type { Aggregate } from "../../kernel/commands/index.js";
import { eventOf, streamVersion } from "../../kernel/events/index.js";
import {
  changeOf,
  decideWorkflow,
  evolveWorkflow,
  type WorkflowCommand,
  type WorkflowEvent,
  type WorkflowState,
} from "../domain/workflow.js";
import { store } from "./postgres.js";

/** A workflow's identity. */
export interface WorkflowKey {
  tenantId: string;
  workflowId: string;
}

/** The stream of a workflow's changes. */
export const workflowStreamId = (workflowId: string) => `integration_workflow-${workflowId}`;

/**
 * The workflow aggregate as the kernel's command helper drives it: `load` locks the workflow's
 * row (its version is its stream's), `save` inserts, updates or deletes it and stores the
 * definition a new version saved; every change is a `WorkflowChanged` event (audited as
 * `integration.workflow.<change>`).
 */
export const workflowAggregate: Aggregate<WorkflowState | undefined, WorkflowEvent, WorkflowCommand, WorkflowKey> = {
  streamId: (key) => workflowStreamId(key.workflowId),
  async load(tx, key) {
    const state = await store.workflow(tx, key.tenantId, key.workflowId, true);
    return { state, version: await streamVersion(tx, workflowStreamId(key.workflowId)) };
  },
  decide: (command, state, key) => decideWorkflow(command, state, key.workflowId),
  evolve: (state, event, key) => evolveWorkflow(state, event, key),
  async save(tx, key, state, _expected, _version, before) {
    if (!state) {
      await store.deleteWorkflow(tx, key.tenantId, key.workflowId);
      return;
    }
    if (!before) await store.insertWorkflow(tx, state);
    else await store.updateWorkflow(tx, state);
    if (state.saved && state.currentVersion !== before?.currentVersion)
      await store.insertVersion(tx, state.id, state.currentVersion, state.saved.definition, state.saved.by);
  },
  toEvent: (event, state, key) =>
    eventOf(WorkflowChangedSchema, {
      tenantId: key.tenantId,
      workflowId: key.workflowId,
      change: changeOf(event),
      name: state?.name ?? (event.type === "Deleted" ? event.name : ""),
      version: state?.currentVersion ?? (event.type === "Deleted" ? event.version : 0),
    }),
};
