import { isDeepStrictEqual } from "node:util";
import type { CoreV1Api } from "@kubernetes/client-node";
import { type FieldSpec, FieldType } from "../../gen/nexus/integration/v1/resources_pb.js";
import type { SenderApp, SenderAppSpec, SenderAppStatus } from "../crds/types.js";
import type { EventRecorder } from "../kube/event-recorder.js";
import type { NexusApi } from "../nexus/nexus-api.js";
import { FIELD_TYPE } from "./enum-mapping.js";
import type { Applied, IntegrationKind } from "./integration-reconcile.js";
import { findObject, markerOf, readSecret, SpecProblemError } from "./integration-refs.js";

/** Data keys of the key Secret the operator writes for a SenderApp. */
export const APP_SECRET_KEYS = { appKey: "appKey", appId: "appId", masterSecret: "masterSecret" } as const;
/** Label naming the SenderApp a key Secret belongs to. */
export const SENDER_APP_LABEL = "nexus.dev/sender-app";

const fieldsOf = (spec: SenderAppSpec) =>
  (spec.fields ?? []).map((f) => ({ name: f.name, type: FIELD_TYPE[f.type ?? "Json"], required: f.required ?? false }));
const comparable = (fields: readonly Pick<FieldSpec, "name" | "type" | "required">[]) =>
  fields.map((f) => ({ name: f.name, type: f.type === FieldType.UNSPECIFIED ? FieldType.JSON : f.type, required: f.required }));
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/**
 * SenderApp → the integration service: created (its app key, and master secret with
 * encryptionRequired, written once into the Secret keySecretName, owned by the SenderApp),
 * its name and field schema kept as the spec says. When the key Secret is gone the key is
 * rotated into a new one (the old key stops at once). A Secret of that name the operator did not
 * write is never overwritten (Degraded SecretConflict).
 */
export function senderAppKind(deps: {
  nexus: NexusApi;
  core: CoreV1Api;
  recorder: EventRecorder;
}): IntegrationKind<SenderApp, SenderAppStatus> {
  const writeSecret = async (app: SenderApp, appId: string, appKey: string, masterSecret: string) => {
    const ns = app.metadata.namespace;
    const data: Record<string, string> = { [APP_SECRET_KEYS.appKey]: b64(appKey), [APP_SECRET_KEYS.appId]: b64(appId) };
    if (masterSecret) data[APP_SECRET_KEYS.masterSecret] = b64(masterSecret);
    await deps.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: app.spec.keySecretName,
          namespace: ns,
          labels: { "app.kubernetes.io/managed-by": "nexus-operator", [SENDER_APP_LABEL]: app.metadata.name },
          ...(app.metadata.uid
            ? {
                ownerReferences: [
                  { apiVersion: app.apiVersion, kind: app.kind, name: app.metadata.name, uid: app.metadata.uid, controller: true },
                ],
              }
            : {}),
        },
        type: "Opaque",
        data,
      },
    });
  };
  return {
    kind: "SenderApp",
    async apply(app, tenantId): Promise<Applied<SenderAppStatus>> {
      const marker = markerOf(app);
      const fields = fieldsOf(app.spec);
      const secret = await readSecret(deps.core, app.metadata.namespace, app.spec.keySecretName);
      if (secret && secret.metadata?.labels?.[SENDER_APP_LABEL] !== app.metadata.name)
        throw new SpecProblemError(
          "SecretConflict",
          `Secret ${app.spec.keySecretName} exists and was not written by the operator for this SenderApp: choose another keySecretName or delete that Secret`,
        );
      const remote = await findObject(
        { id: app.status?.appId, tenantId: app.status?.tenantId },
        tenantId,
        app.metadata.name,
        async (appId) => (await deps.nexus.integration.getSenderApp({ tenantId, appId })).app,
        async () => (await deps.nexus.integration.listSenderApps({ tenantId })).apps,
      );
      if (!remote) {
        const created = await deps.nexus.integration.createSenderApp({
          tenantId,
          name: app.metadata.name,
          fields,
          encryptionRequired: app.spec.encryptionRequired ?? false,
          kubernetesResource: marker,
        });
        const id = created.app?.appId ?? "";
        try {
          await writeSecret(app, id, created.appKey, created.masterSecret);
        } catch (err) {
          // The key exists nowhere else: an app whose key could not be stored must not stay.
          await deps.nexus.integration.deleteSenderApp({ tenantId, appId: id, kubernetesResource: marker }).catch(() => undefined);
          throw err;
        }
        await deps.recorder.record(app, "Normal", "AppKeyIssued", `app key of ${id} written to Secret ${app.spec.keySecretName}`);
        return { status: { appId: id, keyPrefix: created.app?.keyPrefix ?? "" }, message: `sender app ${id} created`, changed: true };
      }
      let changed = false;
      let keyPrefix = remote.keyPrefix;
      if (
        remote.kubernetesResource !== marker ||
        remote.name !== app.metadata.name ||
        !isDeepStrictEqual(comparable(remote.fields), comparable(fields))
      ) {
        const updated = await deps.nexus.integration.updateSenderApp({
          tenantId,
          appId: remote.appId,
          name: app.metadata.name,
          fields,
          kubernetesResource: marker,
        });
        keyPrefix = updated.app?.keyPrefix ?? keyPrefix;
        changed = true;
      }
      if (!secret) {
        // The key Secret was deleted (or never written): issue a new key into a new one.
        const rotated = await deps.nexus.integration.rotateAppKey({ tenantId, appId: remote.appId, kubernetesResource: marker });
        const master = remote.encryptionRequired
          ? (await deps.nexus.integration.rotateMasterSecret({ tenantId, appId: remote.appId, kubernetesResource: marker })).masterSecret
          : "";
        await writeSecret(app, remote.appId, rotated.appKey, master);
        await deps.recorder.record(
          app,
          "Normal",
          "AppKeyRotated",
          `Secret ${app.spec.keySecretName} was missing: a new app key was issued into it`,
        );
        changed = true;
      }
      return {
        status: { appId: remote.appId, keyPrefix },
        message: changed ? `sender app ${remote.appId} updated` : `sender app ${remote.appId} matches the spec`,
        changed,
      };
    },
    async remove(app, tenantId) {
      const id = app.status?.appId;
      if (id) await deps.nexus.integration.deleteSenderApp({ tenantId, appId: id, kubernetesResource: markerOf(app) });
    },
  };
}
