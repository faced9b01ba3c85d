import type { JsonValue } from "@bufbuild/protobuf";
import { domainError } from "../../kernel/errors.js";
import { type MarkerRequest, markerForChange, markerForCreate } from "./kubernetes-managed.js";

/** What a definition fixes on the workflow's row (kind, source, retention). */
export interface WorkflowFields {
  kind: string;
  sourceAppId: string | null;
  sourceMqttId: string | null;
  retentionHours: number;
}

/** A workflow's state (its row), with the definition its last event saved. */
export interface WorkflowState extends WorkflowFields {
  id: string;
  tenantId: string;
  name: string;
  currentVersion: number;
  /** False while paused. */
  enabled: boolean;
  /** Who paused it: "" for a user, `saga:<id>` for a tenant's offboarding (which resumes only its own). */
  pausedBy: string;
  /** The Kubernetes resource that declares it ("" when not managed by Kubernetes). */
  kubernetesResource: string;
  createdAt: Date;
  /** The definition of `currentVersion` when the last event saved one (proto JSON), and who saved it. */
  saved?: { definition: JsonValue; by: string };
}

/** What happens to a workflow. */
export type WorkflowEvent =
  | { type: "Created"; name: string; fields: WorkflowFields; definition: JsonValue; by: string; at: Date; kubernetesResource: string }
  | {
      type: "VersionSaved";
      change: "updated" | "rolled_back";
      fields: WorkflowFields;
      definition: JsonValue;
      by: string;
      kubernetesResource: string;
    }
  | { type: "Paused"; by: string }
  | { type: "Resumed" }
  | { type: "Deleted"; name: string; version: number };

/** What a workflow is asked to do. */
export type WorkflowCommand =
  | { type: "Create"; name: string; fields: WorkflowFields; definition: JsonValue; by: string; at: Date; marker: MarkerRequest }
  | {
      type: "SaveVersion";
      /** Who asks, for the Kubernetes marker ("Kubernetes wins": docs/kubernetes.md). */
      marker: MarkerRequest;
      change: "updated" | "rolled_back";
      fields: WorkflowFields;
      definition: JsonValue;
      by: string;
      /** The definition version the editor saw (0: any). */
      expectedVersion: number;
    }
  /** `by`: "" (a user) or `saga:<id>`. Pausing a paused workflow changes nothing. */
  | { type: "Pause"; by: string }
  /** `onlyPausedBy`: resume only when this one paused it (a saga's compensation). */
  | { type: "Resume"; onlyPausedBy?: string }
  | { type: "Delete"; marker: MarkerRequest };

const notFound = (id: string) => domainError("NOT_FOUND", `no workflow ${id} in this tenant`, { workflow_id: id });

/** The events a command decides on a workflow (pure); refusals throw domain errors. */
export function decideWorkflow(command: WorkflowCommand, state: WorkflowState | undefined, id: string): WorkflowEvent[] {
  if (command.type === "Create") {
    if (state) throw domainError("ALREADY_EXISTS", `workflow ${id} already exists`, { workflow_id: id });
    return [
      {
        type: "Created",
        name: command.name,
        fields: command.fields,
        definition: command.definition,
        by: command.by,
        at: command.at,
        kubernetesResource: markerForCreate(command.marker),
      },
    ];
  }
  if (!state) throw notFound(id);
  switch (command.type) {
    case "SaveVersion": {
      const kubernetesResource = markerForChange("workflow", state, command.marker);
      if (command.expectedVersion && state.currentVersion !== command.expectedVersion)
        throw domainError(
          "CONCURRENCY_CONFLICT",
          `workflow ${id} is at version ${state.currentVersion}, not ${command.expectedVersion}: reload and edit again`,
          { current_version: state.currentVersion },
        );
      return [
        {
          type: "VersionSaved",
          change: command.change,
          fields: command.fields,
          definition: command.definition,
          by: command.by,
          kubernetesResource,
        },
      ];
    }
    case "Pause":
      return state.enabled ? [{ type: "Paused", by: command.by }] : [];
    case "Resume":
      if (state.enabled) return [];
      if (command.onlyPausedBy !== undefined && state.pausedBy !== command.onlyPausedBy) return [];
      return [{ type: "Resumed" }];
    case "Delete":
      markerForChange("workflow", state, command.marker);
      return [{ type: "Deleted", name: state.name, version: state.currentVersion }];
    default: {
      const _exhaustive: never = command;
      return _exhaustive;
    }
  }
}

/** The state after an event (pure); `key` names a new workflow. */
export function evolveWorkflow(
  state: WorkflowState | undefined,
  event: WorkflowEvent,
  key: { tenantId: string; workflowId: string },
): WorkflowState | undefined {
  switch (event.type) {
    case "Created":
      return {
        id: key.workflowId,
        tenantId: key.tenantId,
        name: event.name,
        currentVersion: 1,
        ...event.fields,
        enabled: true,
        pausedBy: "",
        kubernetesResource: event.kubernetesResource,
        createdAt: event.at,
        saved: { definition: event.definition, by: event.by },
      };
    case "VersionSaved":
      if (!state) return state;
      return {
        ...state,
        ...event.fields,
        currentVersion: state.currentVersion + 1,
        kubernetesResource: event.kubernetesResource,
        saved: { definition: event.definition, by: event.by },
      };
    case "Paused":
      return state && { ...state, enabled: false, pausedBy: event.by, saved: undefined };
    case "Resumed":
      return state && { ...state, enabled: true, pausedBy: "", saved: undefined };
    case "Deleted":
      return undefined;
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}

/** The `WorkflowChanged.change` of an event (the audit's `integration.workflow.<change>`). */
export function changeOf(event: WorkflowEvent): string {
  switch (event.type) {
    case "Created":
      return "created";
    case "VersionSaved":
      return event.change;
    case "Paused":
      return "disabled";
    case "Resumed":
      return "enabled";
    case "Deleted":
      return "deleted";
    default: {
      const _exhaustive: never = event;
      return _exhaustive;
    }
  }
}
