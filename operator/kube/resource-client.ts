import type { CustomObjectsApi } from "@kubernetes/client-node";
import { NEXUS_GROUP, NEXUS_VERSION, type ResourceNames } from "../crds/group.js";
import type { CommonStatus, NexusResource } from "../crds/types.js";
import { MERGE_PATCH } from "./kube-clients.js";

/**
 * Reads and writes one kind of Nexus custom resource through CustomObjectsApi. Every write that
 * must not clobber a newer version carries the resourceVersion it was based on, so the API
 * server answers 409 Conflict instead (the controller then requeues).
 */
export class ResourceClient<T extends NexusResource<unknown, CommonStatus>> {
  constructor(
    private readonly api: CustomObjectsApi,
    /** The kind's names (plural is the URL segment). */
    readonly names: ResourceNames,
  ) {}

  /** URL path of the collection, for the informer's watch: one namespace, or all when undefined. */
  collectionPath(namespace?: string): string {
    return namespace
      ? `/apis/${NEXUS_GROUP}/${NEXUS_VERSION}/namespaces/${namespace}/${this.names.plural}`
      : `/apis/${NEXUS_GROUP}/${NEXUS_VERSION}/${this.names.plural}`;
  }

  /** Lists the objects (one namespace, or all), with the collection's resourceVersion. */
  async list(namespace?: string): Promise<{ items: T[]; metadata?: { resourceVersion?: string } }> {
    const common = { group: NEXUS_GROUP, version: NEXUS_VERSION, plural: this.names.plural };
    return (
      namespace ? await this.api.listNamespacedCustomObject({ ...common, namespace }) : await this.api.listClusterCustomObject(common)
    ) as { items: T[]; metadata?: { resourceVersion?: string } };
  }

  /** Reads one object fresh from the API server (throws 404 when gone). */
  async get(namespace: string, name: string): Promise<T> {
    return (await this.api.getNamespacedCustomObject({
      group: NEXUS_GROUP,
      version: NEXUS_VERSION,
      plural: this.names.plural,
      namespace,
      name,
    })) as T;
  }

  /** JSON-merge-patches the object (metadata/spec); include `metadata.resourceVersion` to make it conditional. */
  async patch(namespace: string, name: string, body: Record<string, unknown>): Promise<T> {
    return (await this.api.patchNamespacedCustomObject(
      { group: NEXUS_GROUP, version: NEXUS_VERSION, plural: this.names.plural, namespace, name, body },
      MERGE_PATCH,
    )) as T;
  }

  /**
   * Replaces the status (PUT on the status subresource, as controller-runtime's
   * `Status().Update()`) on condition that the object is still at `resourceVersion`. A replace,
   * not a merge patch: a field the new status leaves out (a limit no longer set, say) must
   * disappear rather than linger from an older status.
   */
  async writeStatus(obj: T, status: T["status"]): Promise<T> {
    return (await this.api.replaceNamespacedCustomObjectStatus({
      group: NEXUS_GROUP,
      version: NEXUS_VERSION,
      plural: this.names.plural,
      namespace: obj.metadata.namespace,
      name: obj.metadata.name,
      body: { apiVersion: obj.apiVersion, kind: obj.kind, metadata: obj.metadata, spec: obj.spec, status },
    })) as T;
  }
}
