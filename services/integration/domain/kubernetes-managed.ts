import { domainError } from "../../kernel/errors.js";

/** Who asks for a change, as far as the Kubernetes marker is concerned. */
export interface MarkerRequest {
  /** The caller is a platform principal (the Nexus operator acts with the platform key). */
  platform?: boolean;
  /** The Kubernetes resource the request speaks for ("" or undefined: none). */
  kubernetesResource?: string;
}

/**
 * The marker a new object gets: the requested Kubernetes resource, which only a platform
 * principal (the Nexus operator) may set — anyone else is refused with PERMISSION_DENIED.
 */
export function markerForCreate(req: MarkerRequest): string {
  const requested = req.kubernetesResource ?? "";
  if (requested && !req.platform)
    throw domainError(
      "RBAC_FORBIDDEN",
      "kubernetes_resource: only the Nexus operator (a platform key) may mark an object as managed by Kubernetes",
      { field: "kubernetes_resource" },
    );
  return requested;
}

/**
 * Checks a change to an existing object against its marker and returns the marker it keeps.
 * "Kubernetes wins": an object a Kubernetes resource declares is changed only by a request
 * naming that same resource (the operator's reconcile); any other edit — API, console, CLI — is
 * refused with FAILED_PRECONDITION MANAGED_BY_KUBERNETES naming the resource. The operator may
 * adopt an object nobody manages yet by naming its resource.
 */
export function markerForChange(what: string, row: { name: string; kubernetesResource: string }, req: MarkerRequest): string {
  const requested = markerForCreate(req);
  if (row.kubernetesResource && requested !== row.kubernetesResource)
    throw domainError(
      "MANAGED_BY_KUBERNETES",
      `${what} ${JSON.stringify(row.name)} is managed by Kubernetes (${row.kubernetesResource}): change that resource instead; edits made here would be overwritten`,
      { kubernetes_resource: row.kubernetesResource, name: row.name },
    );
  return requested;
}
