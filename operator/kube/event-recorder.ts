import { randomBytes } from "node:crypto";
import type { CoreV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { NexusResource } from "../crds/types.js";
import { describeKubeError } from "./api-errors.js";

/** Normal or Warning, as `kubectl describe` shows them. */
export type EventType = "Normal" | "Warning";

/** Records Kubernetes Events (core/v1) about Nexus resources; `kubectl describe` shows them. */
export interface EventRecorder {
  /** Records one event; failures are logged, never thrown (an event is not worth a failed reconcile). */
  record(obj: NexusResource<unknown, unknown>, type: EventType, reason: string, message: string): Promise<void>;
}

/** Options of {@link createEventRecorder}. */
export interface EventRecorderOptions {
  core: CoreV1Api;
  logger: Logger;
  /** reportingInstance: the operator pod's name (default the host name). */
  instance: string;
  /** Component name in `source` (default "nexus-operator"). */
  component?: string;
  clock?: () => Date;
}

/** An {@link EventRecorder} writing core/v1 Events in the object's namespace. */
export function createEventRecorder(options: EventRecorderOptions): EventRecorder {
  const component = options.component ?? "nexus-operator";
  const clock = options.clock ?? (() => new Date());
  return {
    async record(obj, type, reason, message) {
      const now = clock();
      try {
        await options.core.createNamespacedEvent({
          namespace: obj.metadata.namespace,
          body: {
            metadata: { name: `${obj.metadata.name}.${randomBytes(8).toString("hex")}`, namespace: obj.metadata.namespace },
            involvedObject: {
              apiVersion: obj.apiVersion,
              kind: obj.kind,
              name: obj.metadata.name,
              namespace: obj.metadata.namespace,
              ...(obj.metadata.uid ? { uid: obj.metadata.uid } : {}),
              ...(obj.metadata.resourceVersion ? { resourceVersion: obj.metadata.resourceVersion } : {}),
            },
            type,
            reason,
            // The API caps messages at 1 KiB.
            message: message.length > 1024 ? `${message.slice(0, 1021)}...` : message,
            source: { component },
            reportingComponent: component,
            reportingInstance: options.instance,
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch (err) {
        options.logger.warn({ err: describeKubeError(err), reason }, "recording a Kubernetes event failed");
      }
    },
  };
}
