import { Code } from "@connectrpc/connect";
import type { Logger } from "pino";
import {
  degradedCondition,
  failedConditions,
  readyCondition,
  reconcilingCondition,
  setConditions,
  waitingConditions,
} from "../controller/conditions.js";
import { addFinalizer, hasFinalizer, INTEGRATION_FINALIZER, removeFinalizer } from "../controller/finalizers.js";
import { done, type ObjectKey, type ReconcileResult, type Reconciler, requeueAfter } from "../controller/reconcile-result.js";
import { writeStatus } from "../controller/status-writer.js";
import type { IntegrationStatus, NexusResource, Tenant } from "../crds/types.js";
import { describeKubeError, httpStatus, isConflict, isNotFound } from "../kube/api-errors.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { describeNexusError, hasCode } from "../nexus/nexus-api.js";
import { SpecProblemError, tenantIdOf, WaitingError } from "./integration-refs.js";

/** What applying one integration object did. */
export interface Applied<S> {
  /** Kind-specific status fields (the object's id, version...). */
  status: Partial<S>;
  /** Ready message, e.g. "workflow 4f… at version 3". */
  message: string;
  /** Whether the object was created or changed in Nexus (an Event is recorded). */
  changed: boolean;
}

/** One integration kind: how its spec is applied to, and removed from, the integration service. */
export interface IntegrationKind<T extends NexusResource<{ tenantRef: { name: string } }, S>, S extends IntegrationStatus> {
  kind: string;
  /** Creates or updates the object (adopting one of the same name), putting back any drift. */
  apply(obj: T, tenantId: string): Promise<Applied<S>>;
  /** Deletes the object from Nexus (NOT_FOUND is fine: already gone). */
  remove(obj: T, tenantId: string): Promise<void>;
}

/** Dependencies of {@link createIntegrationReconciler}. */
export interface IntegrationReconcilerDeps<T> {
  resources: ResourceClient<T & NexusResource<unknown, IntegrationStatus>>;
  tenants: ResourceClient<Tenant>;
  recorder: EventRecorder;
  logger: Logger;
  clock?: () => Date;
  /** How often a Ready object is applied again (drift made outside Kubernetes is put back). Default 60000 ms. */
  resyncMs?: number;
  /** How soon an object waiting for its Tenant or a referenced object looks again. Default 3000 ms. */
  waitRequeueMs?: number;
}

type Outcome<S> =
  | { kind: "ready"; status: Partial<S>; message: string }
  | { kind: "waiting"; reason: string; message: string }
  | { kind: "failed"; reason: string; message: string };

const stamp = (d: Date) => d.toISOString().replace(/\.\d+Z$/, "Z");

/** The status for an outcome: Ready/Reconciling/Degraded with reasons, kind fields kept from before. */
export function integrationStatus<S extends IntegrationStatus>(
  previous: S | undefined,
  outcome: Outcome<S>,
  generation: number,
  now: Date,
  tenantId: string | undefined,
): S {
  const base = { ...(previous ?? {}), ...(tenantId ? { tenantId } : {}) } as S;
  switch (outcome.kind) {
    case "ready":
      return {
        ...base,
        ...outcome.status,
        phase: "Ready",
        conditions: setConditions(
          previous?.conditions,
          [
            readyCondition(true, "Applied", outcome.message, generation),
            reconcilingCondition(false, "Reconciled", "spec applied", generation),
            degradedCondition(false, "Healthy", "last reconcile succeeded", generation),
          ],
          now,
        ),
      };
    case "waiting":
      return {
        ...base,
        phase: "Pending",
        conditions: waitingConditions(previous?.conditions, outcome.reason, outcome.message, generation, now),
      };
    case "failed":
      return {
        ...base,
        phase: "Degraded",
        conditions: failedConditions(previous?.conditions, outcome.reason, outcome.message, generation, now),
      };
    default: {
      const _exhaustive: never = outcome;
      return _exhaustive;
    }
  }
}

/** Condition reason and message of a failed step: a spec problem, a Kubernetes error, a refusal by the service. */
function describeFailure(err: unknown): { reason: string; message: string } {
  if (err instanceof SpecProblemError) return { reason: err.reason, message: err.message };
  if (httpStatus(err) !== undefined) return { reason: "KubernetesApiError", message: describeKubeError(err) };
  return describeNexusError(err);
}

/**
 * The reconcile shared by Workflow, Destination and SenderApp (level-triggered): re-reads the
 * object; on deletion removes it from the integration service, then the finalizer; otherwise
 * adds the finalizer, finds the tenant id through the Tenant object, and applies the spec
 * (`kind.apply`: create, adopt by name or update, with the Kubernetes marker, so edits made
 * through the API are refused and drift is put back at each resync). Status: Ready=True once
 * applied; Ready=False waiting for a reference (TenantNotReady, DestinationNotReady...);
 * Degraded=True with the reason when a Secret is missing or the service refused the spec (the
 * service's code as `Nexus<Code>` and its ErrorInfo reason in the message), retried with backoff.
 */
export function createIntegrationReconciler<T extends NexusResource<{ tenantRef: { name: string } }, S>, S extends IntegrationStatus>(
  deps: IntegrationReconcilerDeps<T>,
  kind: IntegrationKind<T, S>,
): Reconciler {
  const clock = deps.clock ?? (() => new Date());
  const resyncMs = deps.resyncMs ?? 60_000;
  const waitMs = deps.waitRequeueMs ?? 3_000;
  const resources = deps.resources as unknown as ResourceClient<T>;
  return {
    kind: kind.kind,
    async reconcile(key: ObjectKey): Promise<ReconcileResult> {
      let obj: T;
      try {
        obj = await resources.get(key.namespace, key.name);
      } catch (err) {
        if (isNotFound(err)) return done();
        throw err;
      }
      const generation = obj.metadata.generation ?? 0;
      if (obj.metadata.deletionTimestamp) {
        if (!hasFinalizer(obj, INTEGRATION_FINALIZER)) return done();
        const tenantId = obj.status?.tenantId;
        try {
          if (tenantId) await kind.remove(obj, tenantId);
        } catch (err) {
          if (!hasCode(err, Code.NotFound)) {
            if (isConflict(err)) throw err;
            const failure = describeFailure(err);
            await writeStatus(resources, deps.recorder, obj, {
              ...integrationStatus<S>(obj.status, { kind: "failed", ...failure }, generation, clock(), undefined),
              phase: "Deleting",
            });
            throw err;
          }
        }
        if (tenantId) await deps.recorder.record(obj, "Normal", "Deleted", `deleted from the integration service (tenant ${tenantId})`);
        await removeFinalizer(resources, obj, INTEGRATION_FINALIZER);
        return done();
      }
      obj = await addFinalizer(resources, obj, INTEGRATION_FINALIZER);
      let outcome: Outcome<S>;
      let tenantId: string | undefined;
      let thrown: unknown;
      try {
        tenantId = await tenantIdOf(deps.tenants, key.namespace, obj.spec.tenantRef.name);
        const applied = await kind.apply(obj, tenantId);
        if (applied.changed) await deps.recorder.record(obj, "Normal", "ObjectApplied", applied.message);
        outcome = {
          kind: "ready",
          status: { ...applied.status, ...(applied.changed ? { lastAppliedAt: stamp(clock()) } : {}) },
          message: applied.message,
        };
      } catch (err) {
        if (isConflict(err)) throw err;
        if (err instanceof WaitingError) outcome = { kind: "waiting", reason: err.reason, message: err.message };
        else {
          thrown = err;
          outcome = { kind: "failed", ...describeFailure(err) };
          deps.logger.warn(
            { kind: kind.kind, object: key, reason: outcome.reason, message: outcome.message },
            "integration reconcile failed",
          );
        }
      }
      await writeStatus(resources, deps.recorder, obj, integrationStatus<S>(obj.status, outcome, generation, clock(), tenantId));
      if (thrown !== undefined) throw thrown;
      return requeueAfter(outcome.kind === "waiting" ? waitMs : resyncMs);
    },
  };
}
