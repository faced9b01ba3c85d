import { isDeepStrictEqual } from "node:util";
import { clone, create, toJson } from "@bufbuild/protobuf";
import type { CoreV1Api } from "@kubernetes/client-node";
import { type DestinationConfig, DestinationConfigSchema, RestAuth, SqlEngine } from "../../gen/nexus/integration/v1/resources_pb.js";
import type { Destination, DestinationSpec, DestinationStatus } from "../crds/types.js";
import type { NexusApi } from "../nexus/nexus-api.js";
import type { Applied, IntegrationKind } from "./integration-reconcile.js";
import { type Credential, findObject, markerOf, readCredential } from "./integration-refs.js";

const REST_AUTH: Record<NonNullable<NonNullable<DestinationSpec["rest"]>["auth"]>, RestAuth> = {
  None: RestAuth.UNSPECIFIED,
  Bearer: RestAuth.BEARER,
  ApiKey: RestAuth.API_KEY,
  Basic: RestAuth.BASIC,
};

/** The Secrets a Destination reads its credentials from (for the Secret watch). */
export function destinationSecretNames(spec: DestinationSpec | undefined): string[] {
  const ref = spec?.rest?.secretRef ?? spec?.sql?.passwordSecretRef ?? spec?.corpus?.apiKeySecretRef;
  return ref ? [ref.name] : [];
}

/** The destination type a spec names (rest, sql, nats, corpus). */
export function destinationType(spec: DestinationSpec): string {
  return spec.rest ? "rest" : spec.sql ? "sql" : spec.nats ? "nats" : "corpus";
}

/** The spec as the service's DestinationConfig, with the credential (empty when none). */
export function destinationConfig(spec: DestinationSpec, credential: string): DestinationConfig {
  if (spec.rest) {
    const r = spec.rest;
    return create(DestinationConfigSchema, {
      kind: {
        case: "rest",
        value: {
          url: r.url,
          method: r.method ?? "POST",
          auth: REST_AUTH[r.auth ?? "None"],
          username: r.username ?? "",
          secret: credential,
          apiKeyHeader: r.apiKeyHeader ?? "",
          headers: r.headers ?? {},
          timeoutMs: r.timeoutMs ?? 0,
          retryStatusCodes: r.retryStatusCodes ?? [],
        },
      },
    });
  }
  if (spec.sql) {
    const s = spec.sql;
    return create(DestinationConfigSchema, {
      kind: {
        case: "sql",
        value: {
          engine: s.engine === "MySQL" ? SqlEngine.MYSQL : SqlEngine.POSTGRES,
          host: s.host,
          port: s.port,
          database: s.database,
          user: s.user,
          password: credential,
          ssl: s.ssl ?? false,
          poolMax: s.poolMax ?? 0,
        },
      },
    });
  }
  if (spec.nats) return create(DestinationConfigSchema, { kind: { case: "nats", value: { subject: spec.nats.subject } } });
  const c = spec.corpus ?? { corpusId: "" };
  return create(DestinationConfigSchema, { kind: { case: "corpus", value: { corpusId: c.corpusId, apiKey: credential } } });
}

/** The configuration as the service stores and returns it: without its credential. */
function withoutCredential(config: DestinationConfig): DestinationConfig {
  const copy = clone(DestinationConfigSchema, config);
  const k = copy.kind;
  if (k.case === "rest") k.value.secret = "";
  else if (k.case === "sql") k.value.password = "";
  else if (k.case === "corpus") k.value.apiKey = "";
  return copy;
}

async function credentialOf(core: CoreV1Api, d: Destination): Promise<Credential | undefined> {
  const s = d.spec;
  const ns = d.metadata.namespace;
  if (s.rest?.secretRef) return readCredential(core, ns, s.rest.secretRef, "secret");
  if (s.sql) return readCredential(core, ns, s.sql.passwordSecretRef, "password");
  if (s.corpus) return readCredential(core, ns, s.corpus.apiKeySecretRef, "apiKey");
  return undefined;
}

/**
 * Destination → the integration service: created with its credential read from the referenced
 * Secret, updated in place (UpdateDestination) when the spec, the Secret (its resourceVersion) or
 * the stored configuration differs from what Kubernetes declares.
 */
export function destinationKind(deps: { nexus: NexusApi; core: CoreV1Api }): IntegrationKind<Destination, DestinationStatus> {
  return {
    kind: "Destination",
    async apply(d, tenantId): Promise<Applied<DestinationStatus>> {
      const credential = await credentialOf(deps.core, d);
      const config = destinationConfig(d.spec, credential?.value ?? "");
      const marker = markerOf(d);
      const type = destinationType(d.spec);
      const secretVersion = credential?.version ?? "";
      const status = (destinationId: string): Partial<DestinationStatus> => ({ destinationId, type, secretVersion });
      const remote = await findObject(
        { id: d.status?.destinationId, tenantId: d.status?.tenantId },
        tenantId,
        d.metadata.name,
        async (destinationId) => (await deps.nexus.integration.getDestination({ tenantId, destinationId })).destination,
        async () => (await deps.nexus.integration.listDestinations({ tenantId })).destinations,
      );
      if (!remote) {
        const created = await deps.nexus.integration.createDestination({
          tenantId,
          name: d.metadata.name,
          config,
          kubernetesResource: marker,
        });
        const id = created.destination?.destinationId ?? "";
        return { status: status(id), message: `destination ${id} created`, changed: true };
      }
      const same =
        remote.kubernetesResource === marker &&
        remote.name === d.metadata.name &&
        isDeepStrictEqual(
          toJson(DestinationConfigSchema, remote.config ?? create(DestinationConfigSchema)),
          toJson(DestinationConfigSchema, withoutCredential(config)),
        ) &&
        (d.status?.secretVersion ?? "") === secretVersion &&
        remote.hasSecret === Boolean(credential?.value);
      if (same)
        return { status: status(remote.destinationId), message: `destination ${remote.destinationId} matches the spec`, changed: false };
      await deps.nexus.integration.updateDestination({
        tenantId,
        destinationId: remote.destinationId,
        name: d.metadata.name,
        config,
        kubernetesResource: marker,
      });
      return { status: status(remote.destinationId), message: `destination ${remote.destinationId} updated`, changed: true };
    },
    async remove(d, tenantId) {
      const id = d.status?.destinationId;
      if (id) await deps.nexus.integration.deleteDestination({ tenantId, destinationId: id, kubernetesResource: markerOf(d) });
    },
  };
}
