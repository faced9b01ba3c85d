import {
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { backoffDelayMs } from "../../services/kernel/resilience/backoff.js";
import type { CommonStatus, NexusResource } from "../crds/types.js";
import { describeKubeError, isConflict } from "../kube/api-errors.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { operatorMetrics } from "./metrics.js";
import { keyOf, parseKey, type Reconciler } from "./reconcile-result.js";
import { WorkQueue, type WorkQueueOptions } from "./work-queue.js";

/** The parts of an object a reconcile acts on; a change elsewhere (status) does not queue it. */
function fingerprint(obj: KubernetesObject): string {
  const m = obj.metadata ?? {};
  return JSON.stringify([m.generation, m.annotations ?? {}, m.labels ?? {}, m.finalizers ?? [], m.deletionTimestamp ?? null]);
}

/** Options of {@link Controller}. */
export interface ControllerOptions<T extends NexusResource<unknown, CommonStatus>> {
  kubeConfig: KubeConfig;
  resources: ResourceClient<T>;
  reconciler: Reconciler;
  logger: Logger;
  /** Watch one namespace; undefined watches all. */
  namespace?: string;
  /** Reconciles running at once (never two for the same object). Default 2. */
  workers?: number;
  /** Every object is queued again this often, whatever the watch said. Default 10 minutes. */
  resyncMs?: number;
  /** Backoff of failed reconciles. */
  queue?: WorkQueueOptions;
  /** Delay before re-queueing after a 409 Conflict. Default 200 ms. */
  conflictDelayMs?: number;
  /**
   * Called for every watch event, status-only changes included (e.g. to queue the Quotas of a
   * Tenant whose status gained its tenant id).
   */
  onEvent?: (obj: KubernetesObject) => void;
}

/**
 * One kind's control loop: an informer (list + watch, cached) feeds a per-resource work queue;
 * workers take keys and run the level-triggered reconcile, which re-reads the object itself.
 * The informer only says *which* object to look at. A watch that fails is restarted with
 * backoff (never `process.exit`); a periodic resync re-queues every cached object.
 */
export class Controller<T extends NexusResource<unknown, CommonStatus>> {
  private readonly queue: WorkQueue;
  private informer: (Informer<KubernetesObject> & ObjectCache<KubernetesObject>) | undefined;
  private workers: Promise<void>[] = [];
  private resyncTimer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private watchFailures = 0;
  private stopped = false;
  private readonly seen = new Map<string, string>();
  private readonly log: Logger;
  private readonly metrics = operatorMetrics();
  /** True once a complete list has been received into the cache. */
  synced = false;

  constructor(private readonly options: ControllerOptions<T>) {
    this.queue = new WorkQueue(options.queue);
    this.log = options.logger.child({ controller: options.reconciler.kind });
  }

  /** Starts the informer and the workers; resolves once the first list is in the cache. */
  async start(): Promise<void> {
    const { kubeConfig, resources, namespace } = this.options;
    const informer = makeInformer<KubernetesObject>(kubeConfig, resources.collectionPath(namespace), async () => {
      const list = (await resources.list(namespace)) as KubernetesListObject<KubernetesObject>;
      // Synced = the cache holds a complete list (a failed list leaves it false; the restart retries).
      this.synced = true;
      return list;
    });
    this.informer = informer;
    const enqueue = (obj: KubernetesObject) => {
      this.seen.set(keyOf(obj), fingerprint(obj));
      this.queue.add(keyOf(obj));
    };
    if (this.options.onEvent) {
      const onEvent = this.options.onEvent;
      informer.on("add", onEvent);
      informer.on("update", onEvent);
      informer.on("delete", onEvent);
    }
    informer.on("add", enqueue);
    // Our own status writes come back as updates: only a change of what the reconcile reads
    // (spec → generation, annotations, finalizers, deletion) is worth a reconcile. Periodic
    // work is scheduled by the reconcile's requeueAfter instead.
    informer.on("update", (obj: KubernetesObject) => {
      if (this.seen.get(keyOf(obj)) !== fingerprint(obj)) enqueue(obj);
    });
    informer.on("delete", (obj: KubernetesObject) => {
      this.seen.delete(keyOf(obj));
      this.queue.add(keyOf(obj));
    });
    informer.on("connect", () => {
      this.watchFailures = 0;
    });
    informer.on("error", (err: unknown) => {
      if (this.stopped) return;
      const delay = backoffDelayMs(++this.watchFailures, { initialMs: 1000, maxMs: 30_000 });
      this.log.warn({ err: describeKubeError(err), retryInMs: delay }, "watch failed; restarting");
      this.restartTimer = setTimeout(() => void this.restartInformer(), delay);
      this.restartTimer.unref();
    });
    for (let i = 0; i < (this.options.workers ?? 2); i += 1) this.workers.push(this.work());
    await informer.start();
    const resyncMs = this.options.resyncMs ?? 600_000;
    this.resyncTimer = setInterval(() => {
      for (const obj of informer.list()) this.queue.add(keyOf(obj));
    }, resyncMs);
    this.resyncTimer.unref();
  }

  private async restartInformer(): Promise<void> {
    if (this.stopped || !this.informer) return;
    try {
      await this.informer.start();
    } catch (err) {
      this.log.warn({ err: describeKubeError(err) }, "restarting the watch failed");
    }
  }

  /** Queues an object by key (`namespace/name`), e.g. when a related object changed. */
  enqueue(key: string): void {
    this.queue.add(key);
  }

  /**
   * The objects in the informer's cache (what the watch last said; may trail the API server by
   * a moment). Reconciles use it to see their siblings without listing on every pass.
   */
  cached(): T[] {
    return (this.informer?.list() ?? []) as unknown as T[];
  }

  /** Queues every cached object matching `predicate`. */
  enqueueMatching(predicate: (obj: T) => boolean): void {
    for (const obj of this.informer?.list() ?? []) if (predicate(obj as unknown as T)) this.queue.add(keyOf(obj));
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      await this.process(key);
      this.queue.done(key);
    }
  }

  private async process(key: string): Promise<void> {
    const kind = this.options.reconciler.kind;
    const end = this.metrics.duration.startTimer({ kind });
    try {
      const result = await this.options.reconciler.reconcile(parseKey(key));
      this.queue.forget(key);
      if (result.kind === "requeueAfter") {
        this.queue.addAfter(key, result.ms);
        this.metrics.reconciles.inc({ kind, result: "requeue" });
      } else {
        this.metrics.reconciles.inc({ kind, result: "done" });
      }
    } catch (err) {
      if (isConflict(err)) {
        // Someone wrote the object since we read it: look again at the newer version.
        this.metrics.reconciles.inc({ kind, result: "conflict" });
        this.log.debug({ key }, "conflict; requeueing");
        this.queue.addAfter(key, this.options.conflictDelayMs ?? 200);
      } else {
        this.metrics.reconciles.inc({ kind, result: "error" });
        this.metrics.errors.inc({ kind });
        const delay = this.queue.addRateLimited(key);
        this.log.warn({ key, err: describeKubeError(err), retryInMs: delay }, "reconcile failed");
      }
    } finally {
      end();
    }
  }

  /** Stops watching and waits for the reconciles in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    await this.informer?.stop();
    this.queue.shutDown();
    await Promise.all(this.workers);
    this.workers = [];
  }
}
