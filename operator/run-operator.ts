import type { Logger } from "pino";
import { backoffDelayMs } from "../services/kernel/resilience/backoff.js";
import type { OperatorConfig } from "./config.js";
import { Controller } from "./controller/controller.js";
import { FAILOVER, QUOTA, TENANT } from "./crds/group.js";
import { nexusCrds } from "./crds/index.js";
import type { Failover, Quota, Tenant } from "./crds/types.js";
import { exportFailoverPhases } from "./failover/failover-metrics.js";
import { createFailoverReconciler } from "./failover/failover-reconcile.js";
import { readRegion } from "./failover/regions.js";
import { RUNTIME_KEYS, readRuntimeFlags, writeRuntimeFlags } from "./failover/runtime-flags.js";
import { type HealthServer, startHealthServer } from "./health-server.js";
import { describeKubeError } from "./kube/api-errors.js";
import { applyCrds } from "./kube/crd-installer.js";
import { createEventRecorder } from "./kube/event-recorder.js";
import { createKubeClients, loadKubeConfig } from "./kube/kube-clients.js";
import { LeaderElector } from "./kube/leader-election.js";
import { LeaseLock } from "./kube/lease-lock.js";
import { ResourceClient } from "./kube/resource-client.js";
import { createNexusApi } from "./nexus/nexus-api.js";
import { createQuotaReconciler } from "./quota/quota-reconcile.js";
import { type SecretWatch, watchOwnedSecrets } from "./tenant/secret-watch.js";
import { createTenantReconciler } from "./tenant/tenant-reconcile.js";

/** A running operator. */
export interface RunningOperator {
  /** Port of /healthz, /readyz, /metrics. */
  port: number;
  /** Whether this replica leads (always true without leader election). */
  isLeader(): boolean;
  /** Graceful shutdown: stop campaigning, drain the reconciles in progress, release the Lease, close the server. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the operator: applies the CRDs (unless disabled), serves health and metrics, and —
 * while it holds the leader Lease — runs one controller per kind (Tenant, Quota, Failover).
 */
export async function runOperator(config: OperatorConfig, logger: Logger): Promise<RunningOperator> {
  const kube = createKubeClients(loadKubeConfig(config.kubeconfig));
  const nexus = createNexusApi({ authUrl: config.authUrl, meteringUrl: config.meteringUrl, platformKey: config.platformKey });
  const recorder = createEventRecorder({ core: kube.core, logger, instance: config.identity });
  const tenants = new ResourceClient<Tenant>(kube.custom, TENANT);
  const quotas = new ResourceClient<Quota>(kube.custom, QUOTA);
  const failovers = new ResourceClient<Failover>(kube.custom, FAILOVER);
  const resyncMs = config.resyncSeconds * 1000;
  const watchNamespace = config.watchNamespace;
  const common = { kubeConfig: kube.config, logger, ...(watchNamespace ? { namespace: watchNamespace } : {}) };

  if (config.applyCrds) {
    const applied = await applyCrds(kube.apiextensions, nexusCrds());
    logger.info({ crds: applied }, "CRDs applied server-side");
  }

  let controllers: Controller<Tenant | Quota | Failover>[] = [];
  let secretWatch: SecretWatch | undefined;
  let unexportFailovers: (() => void) | undefined;
  let stopping = false;

  const startControllers = async () => {
    // The runtime flags exist from the start, so service pods can mount them.
    const flagsLoc = { core: kube.core, namespace: config.namespace, name: config.failover.runtimeConfigMap };
    const flags = await readRuntimeFlags(flagsLoc);
    if (!flags.databaseRegion && config.failover.primaryRegion) {
      const region = await readRegion(kube.core, config.namespace, config.failover.regionsConfigMap, config.failover.primaryRegion);
      await writeRuntimeFlags(flagsLoc, {
        [RUNTIME_KEYS.databaseRegion]: config.failover.primaryRegion,
        ...(region ? { [RUNTIME_KEYS.databaseEndpoint]: region.endpoint } : {}),
        [RUNTIME_KEYS.updatedBy]: "nexus-operator (start-up)",
      });
    } else if (!flags.databaseRegion) {
      await writeRuntimeFlags(flagsLoc, { [RUNTIME_KEYS.updatedBy]: "nexus-operator (start-up)" });
    }
    // Each reconcile sees its siblings through its controller's cache (the closures run only
    // once the controllers exist), to find objects claiming the same slug or the same tenant.
    const quotaController: Controller<Quota> = new Controller<Quota>({
      ...common,
      resources: quotas,
      reconciler: createQuotaReconciler({
        quotas,
        tenants,
        nexus,
        recorder,
        logger,
        resyncMs,
        quotasInScope: () => quotaController.cached(),
      }),
      // A Quota deleted or moved frees its Tenant for another Quota waiting as DuplicateQuota.
      onEvent: (q) => {
        const ref = (q as Quota).spec?.tenantRef?.name;
        quotaController.enqueueMatching(
          (o) => o.metadata.namespace === q.metadata?.namespace && o.spec.tenantRef.name === ref && o.metadata.name !== q.metadata?.name,
        );
      },
    });
    const tenantController: Controller<Tenant> = new Controller<Tenant>({
      ...common,
      resources: tenants,
      reconciler: createTenantReconciler({
        tenants,
        core: kube.core,
        nexus,
        recorder,
        logger,
        resyncMs,
        tenantsInScope: () => tenantController.cached(),
      }),
      onEvent: (t) => {
        // A Quota waits for its Tenant's id: look at it again whenever the Tenant changes.
        quotaController.enqueueMatching(
          (q) => q.metadata.namespace === t.metadata?.namespace && q.spec.tenantRef.name === t.metadata?.name,
        );
        // A Tenant deleted frees its slug for another Tenant waiting as SlugConflict.
        const slug = (t as Tenant).spec?.slug;
        tenantController.enqueueMatching(
          (o) => o.spec.slug === slug && (o.metadata.namespace !== t.metadata?.namespace || o.metadata.name !== t.metadata?.name),
        );
      },
    });
    const failoverController: Controller<Failover> = new Controller<Failover>({
      ...common,
      resources: failovers,
      workers: 1,
      reconciler: createFailoverReconciler({
        failovers,
        core: kube.core,
        apps: kube.apps,
        lock: { coordination: kube.coordination, leaseDurationSeconds: 300 },
        settings: { namespace: config.namespace, ...config.failover },
        recorder,
        logger,
      }),
    });
    controllers = [tenantController, quotaController, failoverController] as Controller<Tenant | Quota | Failover>[];
    unexportFailovers = exportFailoverPhases(() => failoverController.cached());
    await Promise.all(controllers.map((c) => c.start()));
    // A key Secret deleted or edited queues its Tenant at once (the reconcile rewrites it).
    secretWatch = await watchOwnedSecrets({
      kubeConfig: kube.config,
      core: kube.core,
      logger,
      ...(watchNamespace ? { namespace: watchNamespace } : {}),
      enqueueTenant: (key) => tenantController.enqueue(key),
    });
    logger.info({ watchNamespace: watchNamespace ?? "(all)" }, "controllers started");
  };
  const stopControllers = async () => {
    const running = controllers;
    controllers = [];
    unexportFailovers?.();
    unexportFailovers = undefined;
    const watch = secretWatch;
    secretWatch = undefined;
    await watch?.stop();
    await Promise.all(running.map((c) => c.stop()));
  };

  let starting: Promise<void> = Promise.resolve();
  /** Starts the controllers while this replica leads, retrying with backoff (e.g. the API server is down). */
  const startWithRetry = async () => {
    let failures = 0;
    while (!stopping && (!elector || elector.isLeader)) {
      try {
        await startControllers();
        return;
      } catch (err) {
        const delay = backoffDelayMs(++failures, { initialMs: 1000, maxMs: 30_000 });
        logger.error({ err: describeKubeError(err), retryInMs: delay }, "starting the controllers failed");
        await stopControllers();
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  };
  let elector: LeaderElector | undefined;
  if (config.leaderElection) {
    elector = new LeaderElector({
      lock: new LeaseLock({
        coordination: kube.coordination,
        namespace: config.namespace,
        name: config.leaderLease,
        identity: config.identity,
        leaseDurationSeconds: 15,
      }),
      logger,
      // Not awaited by the elector: renewing the Lease must not wait for the informers.
      onStartedLeading: async () => {
        starting = startWithRetry();
      },
      onStoppedLeading: async () => {
        await starting;
        await stopControllers();
      },
    });
  }

  const health: HealthServer = await startHealthServer(
    {
      live: () => !stopping,
      ready: () => {
        if (stopping) return { ready: false, reason: "shutting down" };
        if (elector && !elector.isLeader) return { ready: true };
        const pending = controllers.filter((c) => !c.synced).length;
        return controllers.length > 0 && pending === 0 ? { ready: true } : { ready: false, reason: "informers not synced yet" };
      },
    },
    config.port,
  );

  if (elector) elector.start();
  else await startControllers();

  let stopped: Promise<void> | undefined;
  return {
    port: health.port,
    isLeader: () => (elector ? elector.isLeader : true),
    stop() {
      stopped ??= (async () => {
        stopping = true;
        if (elector) await elector.stop();
        else await stopControllers();
        await health.close();
      })();
      return stopped;
    },
  };
}
