/** API group of every Nexus custom resource. */
export const NEXUS_GROUP = "nexus.dev";
/** The one served and stored version of the Nexus custom resources. */
export const NEXUS_VERSION = "v1alpha1";
/** `apiVersion` of Nexus custom resources. */
export const NEXUS_API_VERSION = `${NEXUS_GROUP}/${NEXUS_VERSION}`;

/** How a custom resource kind is named on the API server (plural is the URL segment). */
export interface ResourceNames {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
}

/** Tenant: a customer organisation with its plan and API keys. */
export const TENANT: ResourceNames = { kind: "Tenant", plural: "tenants", singular: "tenant", shortNames: ["ntn"] };
/** Quota: run and run-unit limits of one Tenant. */
export const QUOTA: ResourceNames = { kind: "Quota", plural: "quotas", singular: "quota", shortNames: ["nqt"] };
/** Failover: one run of the regional failover state machine. */
export const FAILOVER: ResourceNames = { kind: "Failover", plural: "failovers", singular: "failover", shortNames: ["nfo"] };
/** Workflow: an integration workflow (fan-out or sequential) of one Tenant. */
export const WORKFLOW: ResourceNames = { kind: "Workflow", plural: "workflows", singular: "workflow", shortNames: ["nwf"] };
/** Destination: where integration workflows deliver (REST, SQL, NATS, corpus), credentials from Secrets. */
export const DESTINATION: ResourceNames = { kind: "Destination", plural: "destinations", singular: "destination", shortNames: ["ndst"] };
/** SenderApp: an application that sends messages to integration ingress; its app key goes into a Secret. */
export const SENDER_APP: ResourceNames = { kind: "SenderApp", plural: "senderapps", singular: "senderapp", shortNames: ["nsa"] };
