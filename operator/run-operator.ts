import type { Logger } from "pino";
import { backoffDelayMs } from "../services/kernel/resilience/backoff.js";
import type { OperatorConfig } from "./config.js";
import { Controller } from "./controller/controller.js";
import { DESTINATION, FAILOVER, QUOTA, SENDER_APP, TENANT, WORKFLOW } from "./crds/group.js";
import { nexusCrds } from "./crds/index.js";
import type { Destination, Failover, Quota, SenderApp, Tenant, Workflow } from "./crds/types.js";
import { exportFailoverPhases } from "./failover/failover-metrics.js";
import { createFailoverReconciler } from "./failover/failover-reconcile.js";
import { readRegion } from "./failover/regions.js";
import { RUNTIME_KEYS, readRuntimeFlags, writeRuntimeFlags } from "./failover/runtime-flags.js";
import { type HealthServer, startHealthServer } from "./health-server.js";
import { type CredentialWatch, watchCredentialSecrets } from "./integration/credential-watch.js";
import { destinationKind, destinationSecretNames } from "./integration/destination-apply.js";
import { createIntegrationReconciler } from "./integration/integration-reconcile.js";
import { senderAppKind } from "./integration/sender-app-apply.js";
import { workflowKind, workflowReferences } from "./integration/workflow-apply.js";
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
 * while it holds the leader Lease — runs one controller per kind (Tenant, Quota, Failover,
 * SenderApp, Destination, Workflow).
 */
export async function runOperator(config: OperatorConfig, logger: Logger): Promise<RunningOperator> {
  const kube = createKubeClients(loadKubeConfig(config.kubeconfig));
  const nexus = createNexusApi({
    authUrl: config.authUrl,
    meteringUrl: config.meteringUrl,
    integrationUrl: config.integrationUrl,
    platformKey: config.platformKey,
  });
  const recorder = createEventRecorder({ core: kube.core, logger, instance: config.identity });
  const tenants = new ResourceClient<Tenant>(kube.custom, TENANT);
  const quotas = new ResourceClient<Quota>(kube.custom, QUOTA);
  const failovers = new ResourceClient<Failover>(kube.custom, FAILOVER);
  const senderApps = new ResourceClient<SenderApp>(kube.custom, SENDER_APP);
  const destinations = new ResourceClient<Destination>(kube.custom, DESTINATION);
  const workflows = new ResourceClient<Workflow>(kube.custom, WORKFLOW);
  const resyncMs = config.resyncSeconds * 1000;
  const watchNamespace = config.watchNamespace;
  const common = { kubeConfig: kube.config, logger, ...(watchNamespace ? { namespace: watchNamespace } : {}) };

  if (config.applyCrds) {
    const applied = await applyCrds(kube.apiextensions, nexusCrds());
    logger.info({ crds: applied }, "CRDs applied server-side");
  }

  type AnyResource = Tenant | Quota | Failover | SenderApp | Destination | Workflow;
  let controllers: Controller<AnyResource>[] = [];
  let secretWatch: SecretWatch | undefined;
  let credentialWatch: CredentialWatch | undefined;
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
        // A Quota (and each integration object) waits for its Tenant's id: look at it again whenever the Tenant changes.
        const ofTenant = (o: Quota | SenderApp | Destination | Workflow) =>
          o.metadata.namespace === t.metadata?.namespace && o.spec?.tenantRef?.name === t.metadata?.name;
        quotaController.enqueueMatching(ofTenant);
        senderAppController.enqueueMatching(ofTenant);
        destinationController.enqueueMatching(ofTenant);
        workflowController.enqueueMatching(ofTenant);
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
    // Workflow, Destination and SenderApp: one reconcile (integration-reconcile.ts), one kind each.
    const integrationDeps = { tenants, recorder, logger, resyncMs };
    const workflowController: Controller<Workflow> = new Controller<Workflow>({
      ...common,
      resources: workflows,
      reconciler: createIntegrationReconciler(
        { ...integrationDeps, resources: workflows },
        workflowKind({ nexus, destinations, senderApps }),
      ),
    });
    /** A Destination or SenderApp that changed (got its id, went away): the Workflows naming it look again. */
    const referencing = (kind: "destinations" | "senderApp") => (o: { metadata?: { namespace?: string; name?: string } }) =>
      workflowController.enqueueMatching((w) => {
        if (w.metadata.namespace !== o.metadata?.namespace) return false;
        const refs = workflowReferences(w);
        return kind === "senderApp" ? refs.senderApp === o.metadata?.name : refs.destinations.includes(o.metadata?.name ?? "");
      });
    const senderAppController: Controller<SenderApp> = new Controller<SenderApp>({
      ...common,
      resources: senderApps,
      reconciler: createIntegrationReconciler(
        { ...integrationDeps, resources: senderApps },
        senderAppKind({ nexus, core: kube.core, recorder }),
      ),
      onEvent: referencing("senderApp"),
    });
    const destinationController: Controller<Destination> = new Controller<Destination>({
      ...common,
      resources: destinations,
      reconciler: createIntegrationReconciler({ ...integrationDeps, resources: destinations }, destinationKind({ nexus, core: kube.core })),
      onEvent: referencing("destinations"),
    });
    controllers = [
      tenantController,
      quotaController,
      failoverController,
      senderAppController,
      destinationController,
      workflowController,
    ] as Controller<AnyResource>[];
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
    // A credential Secret rotated, or a SenderApp's key Secret deleted: re-apply what names it.
    credentialWatch = await watchCredentialSecrets({
      kubeConfig: kube.config,
      core: kube.core,
      logger,
      ...(watchNamespace ? { namespace: watchNamespace } : {}),
      onSecret: (ns, name) => {
        destinationController.enqueueMatching((d) => d.metadata.namespace === ns && destinationSecretNames(d.spec).includes(name));
        senderAppController.enqueueMatching((a) => a.metadata.namespace === ns && a.spec?.keySecretName === name);
      },
      onResync: () => {
        destinationController.enqueueMatching(() => true);
        senderAppController.enqueueMatching(() => true);
      },
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
    const credentials = credentialWatch;
    credentialWatch = undefined;
    await credentials?.stop();
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
