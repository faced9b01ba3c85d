import {
  ApiextensionsV1Api,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";

/** The typed Kubernetes API clients the operator uses, sharing one KubeConfig. */
export interface KubeClients {
  config: KubeConfig;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  coordination: CoordinationV1Api;
  apps: AppsV1Api;
  apiextensions: ApiextensionsV1Api;
}

/**
 * Loads the cluster connection: the kubeconfig file at `path` when given (or KUBECONFIG /
 * ~/.kube/config), else the in-cluster service account — client-node's `loadFromDefault`
 * order. Same code path in a cluster, on a laptop and in the tests (which point a kubeconfig
 * at a stand-in API server).
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error("no Kubernetes cluster configured: give --kubeconfig, set KUBECONFIG, or run in a cluster");
  return kc;
}

/** Builds every client from one KubeConfig. */
export function createKubeClients(config: KubeConfig): KubeClients {
  return {
    config,
    custom: config.makeApiClient(CustomObjectsApi),
    core: config.makeApiClient(CoreV1Api),
    coordination: config.makeApiClient(CoordinationV1Api),
    apps: config.makeApiClient(AppsV1Api),
    apiextensions: config.makeApiClient(ApiextensionsV1Api),
  };
}

/**
 * Request options that send a patch as a JSON merge patch (RFC 7386). client-node 1.x/2.x
 * sends `application/json-patch+json` by default (the first type the OpenAPI spec lists), so
 * every merge patch must carry this override.
 */
export const MERGE_PATCH = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);

/** Request options for a JSON patch (RFC 6902), stated explicitly rather than relied on as the default. */
export const JSON_PATCH = setHeaderOptions("Content-Type", PatchStrategy.JsonPatch);

/** Request options for server-side apply (`application/apply-patch+yaml`; a JSON body is valid YAML). */
export const SERVER_SIDE_APPLY = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);

/** The operator's field manager name for server-side apply and writes. */
export const FIELD_MANAGER = "nexus-operator";
