import type { AppsV1Api, CoreV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { addFinalizer, FAILOVER_FINALIZER, hasFinalizer, removeFinalizer } from "../controller/finalizers.js";
import { done, type ObjectKey, type ReconcileResult, type Reconciler, requeueAfter } from "../controller/reconcile-result.js";
import { writeStatus } from "../controller/status-writer.js";
import type { Failover, FailoverPhase, FailoverStatus } from "../crds/types.js";
import { describeKubeError, isConflict, isNotFound } from "../kube/api-errors.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { acquireFailoverLock, type FailoverLockOptions, releaseFailoverLock } from "./failover-lock.js";
import { ACTIVE_PHASES, FAILOVER_FAILURES, precheckDecision } from "./failover-machine.js";
import { errorStatus, transitionStatus, waitingStatus } from "./failover-status.js";
import { readRegion, regionDatabaseUrl } from "./regions.js";
import { restartDeployments } from "./restart-deployments.js";
import { RUNTIME_KEYS, type RuntimeFlagsLocation, readRuntimeFlags, writeRuntimeFlags } from "./runtime-flags.js";
import { checkServicesReady, servicesOffEndpoint } from "./service-health.js";
import { measureTarget, promoteTarget } from "./target-database.js";

/** Settings of the failover machinery (operator flags; see operator/config.ts). */
export interface FailoverSettings {
  /** Namespace of the runtime and regions ConfigMaps, the Lease and the Nexus Deployments. */
  namespace: string;
  /** The shared runtime-flags ConfigMap (writeFrozen, databaseRegion, databaseEndpoint). */
  runtimeConfigMap: string;
  /** The region catalog ConfigMap. */
  regionsConfigMap: string;
  /** Lease that lets one failover run at a time. */
  leaseName: string;
  /** Cooldown between the end of one failover and the start of the next. */
  cooldownSeconds: number;
  /** How long after freezing writes before the precheck (time for every pod to see the flag). */
  freezeSettleSeconds: number;
  /** How long verification may wait for the services to be ready on the new database. */
  verificationTimeoutSeconds: number;
  /** Base URLs of the Nexus services whose /readyz must answer 200 before writes are unfrozen. */
  healthUrls: readonly string[];
  /** Selects the Nexus Deployments to roll onto a new database endpoint. */
  deploymentSelector: string;
}

/** Dependencies of {@link createFailoverReconciler}. */
export interface FailoverReconcilerDeps {
  failovers: ResourceClient<Failover>;
  core: CoreV1Api;
  apps: AppsV1Api;
  lock: Omit<FailoverLockOptions, "clock" | "cooldownSeconds" | "namespace" | "name">;
  settings: FailoverSettings;
  recorder: EventRecorder;
  logger: Logger;
  clock?: () => Date;
  /** How often a waiting step looks again. Default 2000 ms. */
  pollMs?: number;
}

/**
 * The Failover reconcile: one step of the state machine per call, the new phase written to
 * status (conditionally on the resourceVersion) before the next step runs, so a crash or a
 * leader change resumes where it stopped. Every step is idempotent. See failover-machine.ts
 * for the transitions and docs/kubernetes.md for the runbook.
 */
export function createFailoverReconciler(deps: FailoverReconcilerDeps): Reconciler {
  const clock = deps.clock ?? (() => new Date());
  const pollMs = deps.pollMs ?? 2_000;
  const s = deps.settings;
  const lockOptions: FailoverLockOptions = {
    ...deps.lock,
    namespace: s.namespace,
    name: s.leaseName,
    cooldownSeconds: s.cooldownSeconds,
    clock,
  };
  const flags: RuntimeFlagsLocation = { core: deps.core, namespace: s.namespace, name: s.runtimeConfigMap };
  const by = (fo: Failover) => `Failover ${fo.metadata.namespace}/${fo.metadata.name}`;

  async function move(fo: Failover, to: FailoverPhase, message: string, extra: Partial<FailoverStatus> = {}): Promise<ReconcileResult> {
    const from = fo.status?.phase ?? "idle";
    await writeStatus(
      deps.failovers,
      deps.recorder,
      fo,
      transitionStatus(fo.status, from, to, message, fo.metadata.generation ?? 0, clock(), extra),
    );
    deps.logger.info({ failover: `${fo.metadata.namespace}/${fo.metadata.name}`, from, to }, message);
    return requeueAfter(0);
  }

  async function wait(fo: Failover, reason: string, message: string, ms: number): Promise<ReconcileResult> {
    await writeStatus(
      deps.failovers,
      deps.recorder,
      fo,
      waitingStatus(fo.status, fo.status?.phase ?? "idle", reason, message, fo.metadata.generation ?? 0, clock()),
    );
    return requeueAfter(ms);
  }

  function fail(fo: Failover, reason: string, message: string, extra: Partial<FailoverStatus> = {}): Promise<ReconcileResult> {
    return move(fo, "failed", `${reason}: ${message}`, { ...extra, failureReason: reason });
  }

  function elapsedMs(fo: Failover): number {
    const since = fo.status?.phaseStartedAt ? new Date(fo.status.phaseStartedAt).getTime() : clock().getTime();
    return clock().getTime() - since;
  }

  async function holdLock(fo: Failover): Promise<boolean> {
    const verdict = await acquireFailoverLock(lockOptions, fo, false);
    return verdict.kind === "held";
  }

  async function step(fo: Failover): Promise<ReconcileResult> {
    const phase: FailoverPhase = fo.status?.phase ?? "idle";
    switch (phase) {
      case "idle": {
        const verdict = await acquireFailoverLock(lockOptions, fo, true);
        if (verdict.kind === "busy") return wait(fo, "WaitingForLock", `another failover is running (${verdict.holder})`, 10_000);
        if (verdict.kind === "cooldown") {
          return wait(
            fo,
            "CooldownActive",
            `cooldown after the previous failover: ${Math.ceil(verdict.remainingMs / 1000)} s left`,
            Math.min(verdict.remainingMs, 60_000),
          );
        }
        const current = await readRuntimeFlags(flags);
        return move(fo, "freeze_writes", `freezing writes: ${fo.spec.reason}`, {
          ...(current.databaseRegion ? { sourceRegion: current.databaseRegion } : {}),
          ...(current.databaseEndpoint ? { sourceEndpoint: current.databaseEndpoint } : {}),
        });
      }
      case "freeze_writes": {
        if (!(await holdLock(fo))) return fail(fo, FAILOVER_FAILURES.lockLost, "the failover Lease was taken by someone else");
        await writeRuntimeFlags(flags, { [RUNTIME_KEYS.writeFrozen]: "true", [RUNTIME_KEYS.updatedBy]: by(fo) });
        const settleMs = s.freezeSettleSeconds * 1000 - elapsedMs(fo);
        if (settleMs > 0)
          return wait(
            fo,
            "WaitingForFreeze",
            `writes frozen; waiting ${Math.ceil(settleMs / 1000)} s for every pod to see the flag`,
            settleMs,
          );
        return move(fo, "precheck", "writes frozen; checking the target");
      }
      case "precheck": {
        if (!(await holdLock(fo))) return fail(fo, FAILOVER_FAILURES.lockLost, "the failover Lease was taken by someone else");
        const region = await readRegion(deps.core, s.namespace, s.regionsConfigMap, fo.spec.targetRegion);
        if (!region)
          return fail(fo, FAILOVER_FAILURES.unknownRegion, `region ${fo.spec.targetRegion} is not in ConfigMap ${s.regionsConfigMap}`);
        const current = await readRuntimeFlags(flags);
        if (current.databaseRegion === region.name)
          return fail(fo, FAILOVER_FAILURES.targetAlreadyActive, `region ${region.name} is already the primary`);
        let lagSeconds: number;
        try {
          lagSeconds = (await measureTarget(await regionDatabaseUrl(deps.core, s.namespace, region))).lagSeconds;
        } catch (err) {
          return fail(fo, FAILOVER_FAILURES.targetUnreachable, `cannot reach the ${region.name} database: ${describeKubeError(err)}`);
        }
        const decision = precheckDecision({
          lagSeconds,
          maxLagSeconds: fo.spec.maxReplicationLagSeconds ?? 10,
          mode: fo.spec.mode ?? "Planned",
        });
        if (decision.kind === "refuse") return fail(fo, decision.reason, decision.message, { replicationLagSeconds: lagSeconds });
        return move(fo, "promoting", decision.note ?? `target lags ${lagSeconds.toFixed(1)} s; promoting`, {
          replicationLagSeconds: lagSeconds,
          targetEndpoint: region.endpoint,
        });
      }
      case "promoting": {
        if (!(await holdLock(fo))) return fail(fo, FAILOVER_FAILURES.lockLost, "the failover Lease was taken by someone else");
        const region = await readRegion(deps.core, s.namespace, s.regionsConfigMap, fo.spec.targetRegion);
        if (!region)
          return fail(fo, FAILOVER_FAILURES.unknownRegion, `region ${fo.spec.targetRegion} disappeared from ${s.regionsConfigMap}`);
        try {
          await promoteTarget(await regionDatabaseUrl(deps.core, s.namespace, region));
        } catch (err) {
          return fail(fo, FAILOVER_FAILURES.promotionFailed, describeKubeError(err));
        }
        await writeRuntimeFlags(flags, {
          [RUNTIME_KEYS.databaseRegion]: region.name,
          [RUNTIME_KEYS.databaseEndpoint]: region.endpoint,
          [RUNTIME_KEYS.updatedBy]: by(fo),
        });
        const rolled = await restartDeployments(deps.apps, s.namespace, s.deploymentSelector, region.endpoint);
        return move(
          fo,
          "verification",
          `${region.name} promoted; services pointed at ${region.endpoint}${rolled.length ? ` (rolled ${rolled.join(", ")})` : ""}`,
        );
      }
      case "verification": {
        if (!(await holdLock(fo))) return fail(fo, FAILOVER_FAILURES.lockLost, "the failover Lease was taken by someone else");
        const region = await readRegion(deps.core, s.namespace, s.regionsConfigMap, fo.spec.targetRegion);
        const problems: string[] = [];
        if (!region) problems.push(`region ${fo.spec.targetRegion} missing`);
        else {
          try {
            const state = await measureTarget(await regionDatabaseUrl(deps.core, s.namespace, region));
            if (state.inRecovery) problems.push(`${region.name} database is still in recovery`);
          } catch (err) {
            problems.push(`${region.name} database: ${describeKubeError(err)}`);
          }
        }
        problems.push(...(await checkServicesReady(s.healthUrls, region ? { expectedEndpoint: region.endpoint } : {})));
        if (problems.length === 0) {
          await writeRuntimeFlags(flags, { [RUNTIME_KEYS.writeFrozen]: "false", [RUNTIME_KEYS.updatedBy]: by(fo) });
          return move(fo, "completed", `services healthy on ${fo.spec.targetRegion}; writes unfrozen`);
        }
        if (elapsedMs(fo) > s.verificationTimeoutSeconds * 1000) {
          return fail(fo, FAILOVER_FAILURES.verificationFailed, problems.join("; "));
        }
        return wait(fo, "WaitingForHealth", problems.join("; "), pollMs);
      }
      case "completed": {
        if (fo.spec.rollback) {
          const verdict = await acquireFailoverLock(lockOptions, fo, false);
          if (verdict.kind !== "held") return wait(fo, "WaitingForLock", "rollback waits for the failover Lease", 10_000);
          return move(fo, "rollback_pending", "rollback requested (spec.rollback)");
        }
        await releaseFailoverLock(lockOptions, fo);
        return done();
      }
      case "failed":
        return move(fo, "rollback_pending", `rolling back after ${fo.status?.failureReason ?? "failure"}`);
      case "rollback_pending": {
        await acquireFailoverLock(lockOptions, fo, false);
        const current = await readRuntimeFlags(flags);
        const source = fo.status?.sourceRegion;
        const update: Record<string, string> = { [RUNTIME_KEYS.updatedBy]: by(fo) };
        let rolled: string[] = [];
        if (source && current.databaseRegion !== source) {
          update[RUNTIME_KEYS.databaseRegion] = source;
          if (fo.status?.sourceEndpoint) update[RUNTIME_KEYS.databaseEndpoint] = fo.status.sourceEndpoint;
        }
        if (update[RUNTIME_KEYS.databaseRegion]) await writeRuntimeFlags(flags, update);
        const endpoint = update[RUNTIME_KEYS.databaseEndpoint];
        if (endpoint) rolled = await restartDeployments(deps.apps, s.namespace, s.deploymentSelector, endpoint);
        // Writes stay frozen until no service still talks to the database being left, or a pod
        // that has not seen the flags yet would write to it. After the verification timeout the
        // run thaws anyway (an outage is worse) and says which services did not confirm.
        const back = endpoint ?? current.databaseEndpoint;
        const elsewhere = back ? await servicesOffEndpoint(s.healthUrls, back) : [];
        if (elsewhere.length > 0 && elapsedMs(fo) <= s.verificationTimeoutSeconds * 1000) {
          return wait(
            fo,
            "WaitingForServices",
            `writes stay frozen until every service is back on ${back}: ${elsewhere.join("; ")}`,
            pollMs,
          );
        }
        await writeRuntimeFlags(flags, { [RUNTIME_KEYS.writeFrozen]: "false", [RUNTIME_KEYS.updatedBy]: by(fo) });
        return move(
          fo,
          "rolled_back",
          `${source ? `services on ${source}${back ? ` (${back})` : ""}` : "database endpoint unchanged"}; writes unfrozen${rolled.length ? ` (rolled ${rolled.join(", ")})` : ""}${
            elsewhere.length ? `; not confirmed within ${s.verificationTimeoutSeconds} s: ${elsewhere.join("; ")}` : ""
          }`,
        );
      }
      case "rolled_back":
        await releaseFailoverLock(lockOptions, fo);
        return done();
      default: {
        const _exhaustive: never = phase;
        return _exhaustive;
      }
    }
  }

  return {
    kind: "Failover",
    async reconcile(key: ObjectKey): Promise<ReconcileResult> {
      let fo: Failover;
      try {
        fo = await deps.failovers.get(key.namespace, key.name);
      } catch (err) {
        if (isNotFound(err)) return done();
        throw err;
      }
      if (fo.metadata.deletionTimestamp) {
        if (!hasFinalizer(fo, FAILOVER_FINALIZER)) return done();
        // A run deleted half-way must not leave writes frozen or the lock taken.
        if (fo.status?.phase && ACTIVE_PHASES.includes(fo.status.phase)) {
          await writeRuntimeFlags(flags, { [RUNTIME_KEYS.writeFrozen]: "false", [RUNTIME_KEYS.updatedBy]: `${by(fo)} (deleted)` });
        }
        await releaseFailoverLock(lockOptions, fo);
        await removeFinalizer(deps.failovers, fo, FAILOVER_FINALIZER);
        return done();
      }
      fo = await addFinalizer(deps.failovers, fo, FAILOVER_FINALIZER);
      try {
        return await step(fo);
      } catch (err) {
        if (isConflict(err)) throw err;
        await writeStatus(
          deps.failovers,
          deps.recorder,
          fo,
          errorStatus(fo.status, fo.status?.phase ?? "idle", "StepError", describeKubeError(err), fo.metadata.generation ?? 0, clock()),
        ).catch(() => undefined);
        throw err;
      }
    },
  };
}
