import { Code } from "@connectrpc/connect";
import type { CoreV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { type Tenant as NexusTenant, TenantStatus as NexusTenantStatus } from "../../gen/nexus/auth/v1/tenant_pb.js";
import { Period } from "../../gen/nexus/metering/v1/quota_pb.js";
import { addFinalizer, TENANT_FINALIZER } from "../controller/finalizers.js";
import { oldestClaimant, sameObject } from "../controller/oldest-claimant.js";
import { type ObjectKey, type ReconcileResult, type Reconciler, requeueAfter } from "../controller/reconcile-result.js";
import { writeStatus } from "../controller/status-writer.js";
import type { Tenant } from "../crds/types.js";
import { describeKubeError, httpStatus, isConflict, isNotFound } from "../kube/api-errors.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { describeNexusError, hasCode, type NexusApi } from "../nexus/nexus-api.js";
import { finalizeTenant } from "./tenant-delete.js";
import { ensureApiKeys, ForeignSecretError, verifyApiKeys } from "./tenant-keys.js";
import { planToProto } from "./tenant-mapping.js";
import { type TenantOutcome, tenantStatus } from "./tenant-status.js";

/** Dependencies of {@link createTenantReconciler}. */
export interface TenantReconcilerDeps {
  tenants: ResourceClient<Tenant>;
  core: CoreV1Api;
  nexus: NexusApi;
  recorder: EventRecorder;
  logger: Logger;
  clock?: () => Date;
  /**
   * The Tenant objects in the operator's watch scope (the informer cache), to find other objects
   * claiming the same slug. Default: none (no conflict detection).
   */
  tenantsInScope?: () => readonly Tenant[];
  /** How often a Ready tenant is checked again (keys, usage). Default 60000 ms. */
  resyncMs?: number;
  /** How soon a tenant whose keys do not authenticate yet is checked again (a key refused for good waits for the resync). Default 5000 ms. */
  pendingRequeueMs?: number;
}

async function ensureTenant(nexus: NexusApi, tenant: Tenant): Promise<NexusTenant> {
  try {
    const found = await nexus.auth.getTenant({ selector: { case: "slug", value: tenant.spec.slug } });
    if (found.tenant) return found.tenant;
  } catch (err) {
    if (!hasCode(err, Code.NotFound)) throw err;
  }
  try {
    const created = await nexus.auth.createTenant({
      slug: tenant.spec.slug,
      displayName: tenant.spec.displayName,
      plan: planToProto(tenant.spec.plan),
    });
    if (!created.tenant) throw new Error("CreateTenant answered without a tenant");
    return created.tenant;
  } catch (err) {
    // Created by someone else between our read and our create: use theirs.
    if (!hasCode(err, Code.AlreadyExists)) throw err;
    const found = await nexus.auth.getTenant({ selector: { case: "slug", value: tenant.spec.slug } });
    if (!found.tenant) throw err;
    return found.tenant;
  }
}

async function monthlyUsage(nexus: NexusApi, tenantId: string): Promise<string> {
  try {
    const summary = await nexus.metering.getUsageSummary({ tenantId, period: Period.MONTH });
    const used = summary.totals?.runsCompleted ?? 0n;
    const limit = summary.quota?.runsLimit;
    return limit === undefined ? `${used} runs` : `${used}/${limit} runs`;
  } catch {
    // Usage is informational: metering being down must not make a working tenant un-Ready.
    return "unknown";
  }
}

/**
 * The Tenant reconcile (level-triggered): re-reads the object; handles deletion through the
 * finalizer; leaves the Nexus tenant alone (Degraded SlugConflict) when an older object claims
 * the same slug; otherwise ensures the tenant exists in Nexus (by slug, idempotent), its display
 * name, plan and suspension match the spec (UpdateTenant / SetPlan / Suspend only when they
 * differ), every listed API key exists in its Secret (rotating on request), and then checks that
 * each key authenticates. Status and Events reflect the outcome.
 */
export function createTenantReconciler(deps: TenantReconcilerDeps): Reconciler {
  const clock = deps.clock ?? (() => new Date());
  const resyncMs = deps.resyncMs ?? 60_000;
  const pendingMs = deps.pendingRequeueMs ?? 5_000;
  return {
    kind: "Tenant",
    async reconcile(key: ObjectKey): Promise<ReconcileResult> {
      let tenant: Tenant;
      try {
        tenant = await deps.tenants.get(key.namespace, key.name);
      } catch (err) {
        if (isNotFound(err)) return { kind: "done" };
        throw err;
      }
      const generation = tenant.metadata.generation ?? 0;
      if (tenant.metadata.deletionTimestamp) {
        try {
          return await finalizeTenant(deps, tenant, otherClaimants(deps, tenant).length > 0);
        } catch (err) {
          if (isConflict(err)) throw err;
          const failure = describeFailure(err);
          await writeStatus(deps.tenants, deps.recorder, tenant, {
            ...tenantStatus(tenant.status, { kind: "failed", ...failure }, generation, clock()),
            phase: "Deleting",
          });
          throw err;
        }
      }
      tenant = await addFinalizer(deps.tenants, tenant, TENANT_FINALIZER);
      const owner = slugOwner(deps, tenant);
      if (owner && !sameObject(owner, tenant)) {
        // Another object already drives this Nexus tenant: touching it would fight that object
        // over plan and keys, and deleting this one would suspend the other's tenant.
        const message = `slug ${tenant.spec.slug} is already claimed by Tenant ${owner.metadata.namespace}/${owner.metadata.name}; choose another slug (this object leaves the Nexus tenant alone)`;
        await writeStatus(
          deps.tenants,
          deps.recorder,
          tenant,
          tenantStatus(tenant.status, { kind: "failed", reason: "SlugConflict", message }, generation, clock()),
        );
        return requeueAfter(resyncMs);
      }
      let outcome: TenantOutcome;
      let thrown: unknown;
      let keyRefused = false;
      try {
        let remote = await ensureTenant(deps.nexus, tenant);
        if (remote.displayName !== tenant.spec.displayName) {
          remote =
            (
              await deps.nexus.auth.updateTenant({
                tenantId: remote.id,
                displayName: tenant.spec.displayName,
                updateMask: { paths: ["display_name"] },
              })
            ).tenant ?? remote;
          await deps.recorder.record(tenant, "Normal", "DisplayNameChanged", `display name set to "${tenant.spec.displayName}"`);
        }
        const plan = planToProto(tenant.spec.plan);
        if (remote.plan !== plan) {
          remote = (await deps.nexus.auth.setPlan({ tenantId: remote.id, plan })).tenant ?? remote;
          await deps.recorder.record(tenant, "Normal", "PlanChanged", `plan set to ${tenant.spec.plan}`);
        }
        const wantSuspended = tenant.spec.suspended === true;
        if (wantSuspended && remote.status !== NexusTenantStatus.SUSPENDED) {
          await deps.nexus.auth.suspendTenant({
            tenantId: remote.id,
            reason: `spec.suspended of Tenant ${tenant.metadata.namespace}/${tenant.metadata.name}`,
          });
          await deps.recorder.record(tenant, "Normal", "TenantSuspended", "tenant suspended (spec.suspended)");
        } else if (!wantSuspended && remote.status === NexusTenantStatus.SUSPENDED) {
          await deps.nexus.auth.resumeTenant({ tenantId: remote.id });
          await deps.recorder.record(tenant, "Normal", "TenantResumed", "tenant resumed");
        }
        const keys = await ensureApiKeys(deps, tenant, remote.id);
        const usage = await monthlyUsage(deps.nexus, remote.id);
        if (wantSuspended) {
          outcome = { kind: "suspended", tenantId: remote.id, keys, usage };
        } else {
          const verified = await verifyApiKeys(deps, tenant, remote.id, keys);
          outcome = verified.failure
            ? { kind: "keysNotWorking", tenantId: remote.id, keys: verified.keys, usage, message: verified.failure }
            : { kind: "ready", tenantId: remote.id, keys: verified.keys, usage };
          keyRefused = verified.refused;
        }
      } catch (err) {
        if (isConflict(err)) throw err;
        thrown = err;
        outcome = { kind: "failed", ...describeFailure(err) };
        deps.logger.warn({ tenant: key, reason: outcome.reason, message: outcome.message }, "tenant reconcile failed");
      }
      await writeStatus(deps.tenants, deps.recorder, tenant, tenantStatus(tenant.status, outcome, generation, clock()));
      if (thrown !== undefined) throw thrown;
      // A key that is not known across the mesh yet is looked at again soon; one refused for good
      // (revoked, expired, inactive) only at the resync, so it does not flood the audit log.
      return requeueAfter(outcome.kind === "keysNotWorking" && !keyRefused ? pendingMs : resyncMs);
    },
  };
}

/** Live Tenant objects other than `tenant` that name the same slug. */
function otherClaimants(deps: TenantReconcilerDeps, tenant: Tenant): Tenant[] {
  return (deps.tenantsInScope?.() ?? []).filter(
    (t) => t.spec?.slug === tenant.spec.slug && !t.metadata.deletionTimestamp && !sameObject(t, tenant),
  );
}

/** The object that owns the slug among this one and the others claiming it. */
function slugOwner(deps: TenantReconcilerDeps, tenant: Tenant): Tenant | undefined {
  return oldestClaimant([tenant, ...otherClaimants(deps, tenant)]);
}

/** Condition reason and message for a failed step (service error, Kubernetes error, foreign Secret). */
function describeFailure(err: unknown): { reason: string; message: string } {
  if (err instanceof ForeignSecretError) return { reason: "SecretConflict", message: err.message };
  if (httpStatus(err) !== undefined) return { reason: "KubernetesApiError", message: describeKubeError(err) };
  return describeNexusError(err);
}
