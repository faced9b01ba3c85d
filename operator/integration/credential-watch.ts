import { type CoreV1Api, type KubeConfig, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeKubeError } from "../kube/api-errors.js";

/** Options of {@link watchCredentialSecrets}. */
export interface CredentialWatchOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  logger: Logger;
  /** Watch one namespace; undefined watches all. */
  namespace?: string;
  /** A Secret was created, changed or deleted: queue the objects that reference it. */
  onSecret: (namespace: string, name: string) => void;
  /** The watch (re)started after a gap: events may have been missed, so queue every object. */
  onResync: () => void;
}

/** A running watch; `stop()` ends it. */
export interface CredentialWatch {
  stop(): Promise<void>;
}

/**
 * Watches Secrets for the integration kinds: a Destination's credential Secret or a SenderApp's
 * key Secret changing (rotated, deleted, created late) queues the objects naming it, so the new
 * credential is applied within seconds. Unlike an informer it keeps nothing: only each event's
 * namespace and name are used, so application Secrets are never cached. A broken or expired
 * watch restarts from a fresh list's resourceVersion (with backoff) and queues every object.
 */
export async function watchCredentialSecrets(options: CredentialWatchOptions): Promise<CredentialWatch> {
  const { kubeConfig, core, logger, namespace, onSecret, onResync } = options;
  const path = namespace ? `/api/v1/namespaces/${namespace}/secrets` : "/api/v1/secrets";
  const watcher = new Watch(kubeConfig);
  let stopped = false;
  let abort: AbortController | undefined;
  let timer: NodeJS.Timeout | undefined;
  let delay = 1000;

  const listVersion = async (): Promise<string> => {
    const list = namespace ? await core.listNamespacedSecret({ namespace, limit: 1 }) : await core.listSecretForAllNamespaces({ limit: 1 });
    return list.metadata?.resourceVersion ?? "";
  };
  const restart = (err?: unknown) => {
    if (stopped) return;
    if (err) logger.warn({ err: describeKubeError(err), retryInMs: delay }, "credential Secret watch failed; restarting");
    timer = setTimeout(() => void start(true), delay);
    timer.unref();
    delay = Math.min(delay * 2, 30_000);
  };
  const start = async (resync: boolean): Promise<void> => {
    if (stopped) return;
    let resourceVersion: string;
    try {
      resourceVersion = await listVersion();
    } catch (err) {
      restart(err);
      return;
    }
    if (resync) onResync();
    let failed = false;
    try {
      abort = await watcher.watch(
        path,
        { resourceVersion, allowWatchBookmarks: true },
        (phase, obj: { metadata?: { namespace?: string; name?: string }; code?: number }) => {
          if (phase === "ERROR") {
            failed = true; // 410 Expired and the like: start again from a fresh list
            abort?.abort();
            return;
          }
          delay = 1000;
          if (phase === "BOOKMARK") return;
          const ns = obj.metadata?.namespace;
          const name = obj.metadata?.name;
          if (ns && name) onSecret(ns, name);
        },
        (err) => {
          if (stopped) return;
          // A watch the server ends normally is resumed at once; a failure waits with backoff.
          if (err || failed) restart(err ?? new Error("watch expired"));
          else void start(true);
        },
      );
    } catch (err) {
      restart(err);
    }
  };
  await start(false);
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      abort?.abort();
    },
  };
}
