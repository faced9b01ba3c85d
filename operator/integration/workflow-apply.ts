import { isDeepStrictEqual } from "node:util";
import { create, type MessageInitShape, toJson } from "@bufbuild/protobuf";
import {
  type Workflow as NexusWorkflow,
  NullStrategy,
  OnError,
  SqlOperation,
  StepType,
  type TargetSchema,
  type WorkflowDefinition,
  WorkflowDefinitionSchema,
  WorkflowKind,
} from "../../gen/nexus/integration/v1/resources_pb.js";
import { findCondition } from "../controller/conditions.js";
import type { Destination, SenderApp, Workflow, WorkflowStatus, WorkflowTargetSpec } from "../crds/types.js";
import { isNotFound } from "../kube/api-errors.js";
import type { ResourceClient } from "../kube/resource-client.js";
import type { NexusApi } from "../nexus/nexus-api.js";
import { FIELD_TYPE } from "./enum-mapping.js";
import type { Applied, IntegrationKind } from "./integration-reconcile.js";
import { findObject, markerOf, WaitingError } from "./integration-refs.js";

const SQL_OPERATION = {
  Insert: SqlOperation.INSERT,
  Upsert: SqlOperation.UPSERT,
  Update: SqlOperation.UPDATE,
  Delete: SqlOperation.DELETE,
  Select: SqlOperation.SELECT,
} as const;
const NULL_STRATEGY = { Skip: NullStrategy.UNSPECIFIED, Null: NullStrategy.NULL, Default: NullStrategy.DEFAULT } as const;
const STEP_TYPE = {
  RestCall: StepType.REST_CALL,
  DbQuery: StepType.DB_QUERY,
  Transform: StepType.TRANSFORM,
  Condition: StepType.CONDITION,
  Delay: StepType.DELAY,
} as const;
const ON_ERROR = { Stop: OnError.UNSPECIFIED, Skip: OnError.SKIP, Retry: OnError.RETRY } as const;

/** Dependencies of {@link workflowKind}. */
export interface WorkflowKindDeps {
  nexus: NexusApi;
  destinations: ResourceClient<Destination>;
  senderApps: ResourceClient<SenderApp>;
}

/** The id a referenced Destination or SenderApp has in Nexus, once it is Ready (WaitingError until then). */
async function referencedId<T extends Destination | SenderApp>(
  client: ResourceClient<T>,
  kind: string,
  namespace: string,
  name: string,
  tenantId: string,
  idOf: (o: T) => string | undefined,
): Promise<string> {
  let obj: T;
  try {
    obj = await client.get(namespace, name);
  } catch (err) {
    if (isNotFound(err)) throw new WaitingError(`${kind}NotFound`, `${kind} ${name} does not exist in ${namespace}`);
    throw err;
  }
  const id = idOf(obj);
  const ready = findCondition(obj.status?.conditions, "Ready");
  if (!id || ready?.status !== "True")
    throw new WaitingError(`${kind}NotReady`, `${kind} ${name} is not Ready yet${ready ? ` (${ready.reason}: ${ready.message})` : ""}`);
  if (obj.status?.tenantId !== tenantId)
    throw new WaitingError(`${kind}OtherTenant`, `${kind} ${name} belongs to another Tenant than this Workflow`);
  return id;
}

/** The names of the Destinations and the SenderApp a Workflow references (for queueing it when they change). */
export function workflowReferences(w: Workflow): { destinations: string[]; senderApp: string | undefined } {
  const targets = [...(w.spec?.targets ?? []), ...(w.spec?.steps ?? []).flatMap((s) => (s.target ? [s.target] : []))];
  return { destinations: targets.map((t) => t.destinationRef.name), senderApp: w.spec?.source?.senderAppRef?.name };
}

/** The spec as the service's WorkflowDefinition, references resolved to ids. */
export async function workflowDefinition(deps: WorkflowKindDeps, w: Workflow, tenantId: string): Promise<WorkflowDefinition> {
  const ns = w.metadata.namespace;
  const destinationIds = new Map<string, string>();
  for (const name of workflowReferences(w).destinations) {
    if (!destinationIds.has(name))
      destinationIds.set(name, await referencedId(deps.destinations, "Destination", ns, name, tenantId, (d) => d.status?.destinationId));
  }
  const appId = await referencedId(deps.senderApps, "SenderApp", ns, w.spec.source.senderAppRef.name, tenantId, (a) => a.status?.appId);
  const target = (t: WorkflowTargetSpec): MessageInitShape<typeof TargetSchema> => ({
    destinationId: destinationIds.get(t.destinationRef.name) ?? "",
    transform: t.transform ?? "",
    condition: t.condition ?? "",
    path: t.path ?? "",
    title: t.title ?? "",
    ...(t.sql
      ? {
          sql: {
            operation: SQL_OPERATION[t.sql.operation],
            table: t.sql.table,
            keyColumns: t.sql.keyColumns ?? [],
            partial: t.sql.partial ?? false,
            mappings: (t.sql.mappings ?? []).map((m) => ({
              source: m.source,
              column: m.column,
              type: FIELD_TYPE[m.type ?? "Json"],
              nullStrategy: NULL_STRATEGY[m.nullStrategy ?? "Skip"],
              ...(m.default !== undefined ? { default: { kind: { case: "stringValue" as const, value: m.default } } } : {}),
            })),
          },
        }
      : {}),
  });
  return create(WorkflowDefinitionSchema, {
    kind: w.spec.kind === "Sequential" ? WorkflowKind.SEQUENTIAL : WorkflowKind.FAN_OUT,
    source: { appId },
    retentionHours: w.spec.retentionHours ?? 168,
    targets: (w.spec.targets ?? []).map(target),
    steps: (w.spec.steps ?? []).map((s) => ({
      name: s.name,
      type: STEP_TYPE[s.type],
      ...(s.target ? { target: target(s.target) } : {}),
      expression: s.expression ?? "",
      thenStep: s.thenStep ?? "",
      elseStep: s.elseStep ?? "",
      nextStep: s.nextStep ?? "",
      delayMs: s.delayMs ?? 0,
      onError: ON_ERROR[s.onError ?? "Stop"],
      maxRetries: s.maxRetries ?? 0,
    })),
  });
}

const sameDefinition = (a: WorkflowDefinition | undefined, b: WorkflowDefinition) =>
  isDeepStrictEqual(toJson(WorkflowDefinitionSchema, a ?? create(WorkflowDefinitionSchema)), toJson(WorkflowDefinitionSchema, b));

/**
 * Workflow → the integration service: created with its references resolved (waiting, Ready=False,
 * until the SenderApp and every Destination are Ready), and a new version saved whenever the
 * current definition differs from the spec — a changed spec, or drift (which the service refuses
 * from anyone but the operator, so drift means the spec changed or an older version was restored).
 */
export function workflowKind(deps: WorkflowKindDeps): IntegrationKind<Workflow, WorkflowStatus> {
  return {
    kind: "Workflow",
    async apply(w, tenantId): Promise<Applied<WorkflowStatus>> {
      const definition = await workflowDefinition(deps, w, tenantId);
      const marker = markerOf(w);
      const remote = await findObject(
        { id: w.status?.workflowId, tenantId: w.status?.tenantId },
        tenantId,
        w.metadata.name,
        async (workflowId) => (await deps.nexus.integration.getWorkflow({ tenantId, workflowId })).workflow,
        async () => (await deps.nexus.integration.listWorkflows({ tenantId })).workflows,
      );
      const status = (x: NexusWorkflow | undefined): Partial<WorkflowStatus> => ({
        workflowId: x?.workflowId ?? "",
        version: x?.currentVersion ?? 0,
        subject: x?.subject ?? "",
      });
      if (!remote) {
        const created = (
          await deps.nexus.integration.createWorkflow({ tenantId, name: w.metadata.name, definition, kubernetesResource: marker })
        ).workflow;
        return { status: status(created), message: `workflow ${created?.workflowId} created at version 1`, changed: true };
      }
      if (remote.kubernetesResource === marker && sameDefinition(remote.definition, definition))
        return {
          status: status(remote),
          message: `workflow ${remote.workflowId} at version ${remote.currentVersion} matches the spec`,
          changed: false,
        };
      const updated = (
        await deps.nexus.integration.updateWorkflow({ tenantId, workflowId: remote.workflowId, definition, kubernetesResource: marker })
      ).workflow;
      return {
        status: status(updated),
        message: `workflow ${remote.workflowId} saved as version ${updated?.currentVersion}`,
        changed: true,
      };
    },
    async remove(w, tenantId) {
      const id = w.status?.workflowId;
      if (id) await deps.nexus.integration.deleteWorkflow({ tenantId, workflowId: id, kubernetesResource: markerOf(w) });
    },
  };
}
