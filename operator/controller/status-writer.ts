import { isDeepStrictEqual } from "node:util";
import type { CommonStatus, NexusResource } from "../crds/types.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { ResourceClient } from "../kube/resource-client.js";
import { CONDITION_TYPES, conditionTransitions } from "./conditions.js";

/**
 * Writes a resource's status when it changed: stamps observedGeneration, writes through the
 * status subresource on condition of the resourceVersion read (409 → the caller's reconcile is
 * retried on the newer object), then records one Kubernetes Event per transition (phase change,
 * condition status change). Returns the object as stored.
 */
export async function writeStatus<T extends NexusResource<unknown, CommonStatus>>(
  client: ResourceClient<T>,
  recorder: EventRecorder,
  obj: T,
  next: NonNullable<T["status"]>,
): Promise<T> {
  const status = { ...next, observedGeneration: obj.metadata.generation ?? 0 } as NonNullable<T["status"]>;
  if (isDeepStrictEqual(obj.status, status)) return obj;
  const stored = await client.writeStatus(obj, status);
  const before = obj.status;
  if (before?.phase !== status.phase && status.phase) {
    const degraded = status.conditions?.find((c) => c.type === CONDITION_TYPES.degraded && c.status === "True");
    await recorder.record(
      stored,
      degraded || status.phase === "failed" || status.phase === "Degraded" ? "Warning" : "Normal",
      "PhaseChanged",
      `phase ${before?.phase ?? "(none)"} -> ${status.phase}`,
    );
  }
  for (const t of conditionTransitions(before?.conditions, status.conditions ?? [])) {
    const bad =
      (t.type === CONDITION_TYPES.degraded && t.to === "True") ||
      (t.type === CONDITION_TYPES.ready && t.to === "False" && t.from === "True");
    await recorder.record(stored, bad ? "Warning" : "Normal", t.reason, `${t.type}=${t.to}: ${t.message}`);
  }
  return stored;
}
