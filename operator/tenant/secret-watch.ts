import {
  type CoreV1Api,
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  makeInformer,
  type ObjectCache,
  type V1Secret,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import { describeKubeError } from "../kube/api-errors.js";
import { SECRET_FIELDS } from "./tenant-mapping.js";

/** Label selector of the Secrets the operator writes. */
export const OWNED_SECRETS_SELECTOR = "app.kubernetes.io/managed-by=nexus-operator";

/** Options of {@link watchOwnedSecrets}. */
export interface SecretWatchOptions {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  logger: Logger;
  /** Watch one namespace; undefined watches all (as the Tenant controller does). */
  namespace?: string;
  /** Queues the Tenant `namespace/name` whose key Secret was deleted or changed. */
  enqueueTenant: (key: string) => void;
}

/** A running watch; `stop()` ends it. */
export interface SecretWatch {
  stop(): Promise<void>;
}

/**
 * Watches the key Secrets the operator wrote (label app.kubernetes.io/managed-by=nexus-operator)
 * and queues their Tenant (label nexus.dev/tenant) when one is deleted or edited, so a deleted
 * key Secret is rewritten within seconds instead of at the next resync. Only Secrets carrying
 * the operator's label are listed and cached: application Secrets are never read.
 */
export async function watchOwnedSecrets(options: SecretWatchOptions): Promise<SecretWatch> {
  const { kubeConfig, core, logger, namespace, enqueueTenant } = options;
  const path = namespace ? `/api/v1/namespaces/${namespace}/secrets` : "/api/v1/secrets";
  const list = async () =>
    (namespace
      ? await core.listNamespacedSecret({ namespace, labelSelector: OWNED_SECRETS_SELECTOR })
      : await core.listSecretForAllNamespaces({ labelSelector: OWNED_SECRETS_SELECTOR })) as KubernetesListObject<V1Secret>;
  const informer: Informer<V1Secret> & ObjectCache<V1Secret> = makeInformer<V1Secret>(kubeConfig, path, list, OWNED_SECRETS_SELECTOR);
  const queueOwner = (secret: V1Secret) => {
    const tenant = secret.metadata?.labels?.[SECRET_FIELDS.tenantLabel];
    if (tenant && secret.metadata?.namespace) enqueueTenant(`${secret.metadata.namespace}/${tenant}`);
  };
  informer.on("update", queueOwner);
  informer.on("delete", queueOwner);
  let stopped = false;
  let delay = 1000;
  let timer: NodeJS.Timeout | undefined;
  informer.on("connect", () => {
    delay = 1000;
  });
  informer.on("error", (err: unknown) => {
    if (stopped) return;
    logger.warn({ err: describeKubeError(err), retryInMs: delay }, "Secret watch failed; restarting");
    timer = setTimeout(() => void informer.start().catch(() => undefined), delay);
    timer.unref();
    delay = Math.min(delay * 2, 30_000);
  });
  await informer.start();
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}
