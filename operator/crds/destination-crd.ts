import { buildCrd, type CustomResourceDefinition, conditionsSchema, type JsonSchema } from "./crd-builder.js";
import { DESTINATION } from "./group.js";
import {
  integrationStatusProperties,
  readyAndTenantColumns,
  reasonColumn,
  refusedInline,
  secretKeyRefSchema,
  tenantRefSchema,
} from "./integration-common.js";

/** REST authentication schemes (Nexus `RestAuth`). */
export const REST_AUTHS = ["None", "Bearer", "ApiKey", "Basic"] as const;
/** SQL engines (Nexus `SqlEngine`). */
export const SQL_ENGINES = ["Postgres", "MySQL"] as const;
/** Destination kinds, as the spec field naming each. */
export const DESTINATION_KINDS = ["rest", "sql", "nats", "corpus"] as const;

/** Headers that carry credentials: refused inline (use auth and secretRef). */
const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "x-api-key", "cookie"];

const restSecret = refusedInline("secret", "rest.secretRef");
const sqlPassword = refusedInline("password", "sql.passwordSecretRef");
const corpusKey = refusedInline("apiKey", "corpus.apiKeySecretRef");

const rest: JsonSchema = {
  type: "object",
  required: ["url"],
  description: "An HTTP endpoint.",
  "x-kubernetes-validations": [
    restSecret.rule,
    {
      rule: "self.auth == 'None' || has(self.secretRef)",
      message: "rest.auth other than None needs rest.secretRef (the token, API key or password)",
    },
    { rule: "self.auth != 'ApiKey' || has(self.apiKeyHeader)", message: "rest.auth ApiKey needs rest.apiKeyHeader" },
    { rule: "self.auth != 'Basic' || has(self.username)", message: "rest.auth Basic needs rest.username" },
  ],
  properties: {
    url: { type: "string", minLength: 1, maxLength: 2000, pattern: "^https?://", description: "Base URL (http or https)." },
    method: { type: "string", enum: ["GET", "POST", "PUT", "PATCH", "DELETE"], default: "POST" },
    auth: { type: "string", enum: [...REST_AUTHS], default: "None" },
    username: { type: "string", maxLength: 200, description: "User name of Basic auth." },
    apiKeyHeader: { type: "string", maxLength: 200, description: "Header carrying the API key (auth ApiKey)." },
    headers: {
      type: "object",
      description: "Extra headers (no credentials: Authorization, X-API-Key and Cookie are refused; use auth and secretRef).",
      maxProperties: 50,
      additionalProperties: { type: "string", maxLength: 4000 },
      "x-kubernetes-validations": [
        {
          rule: `self.all(h, !(h.lowerAscii() in ${JSON.stringify(CREDENTIAL_HEADERS).replace(/"/g, "'")}))`,
          message:
            "inline credentials are refused: Authorization, Proxy-Authorization, X-API-Key and Cookie headers go through rest.auth and rest.secretRef",
        },
      ],
    },
    timeoutMs: { type: "integer", minimum: 1, maximum: 300000, default: 10000 },
    retryStatusCodes: { type: "array", maxItems: 100, items: { type: "integer", minimum: 100, maximum: 599 } },
    secretRef: secretKeyRefSchema("bearer token, API key or Basic password", "secret"),
    secret: restSecret.property,
  },
};

const sql: JsonSchema = {
  type: "object",
  required: ["engine", "host", "port", "database", "user", "passwordSecretRef"],
  description: "A PostgreSQL or MySQL/MariaDB database.",
  "x-kubernetes-validations": [sqlPassword.rule],
  properties: {
    engine: { type: "string", enum: [...SQL_ENGINES] },
    host: { type: "string", minLength: 1, maxLength: 255 },
    port: { type: "integer", minimum: 1, maximum: 65535 },
    database: { type: "string", minLength: 1, maxLength: 200 },
    user: { type: "string", minLength: 1, maxLength: 200 },
    passwordSecretRef: secretKeyRefSchema("database password", "password"),
    password: sqlPassword.property,
    ssl: { type: "boolean", default: false },
    poolMax: { type: "integer", minimum: 1, maximum: 100, default: 5 },
  },
};

const nats: JsonSchema = {
  type: "object",
  required: ["subject"],
  description: "A NATS subject (the installation's NATS).",
  properties: { subject: { type: "string", minLength: 1, maxLength: 500, pattern: "^[A-Za-z0-9_.-]+$" } },
};

const corpus: JsonSchema = {
  type: "object",
  required: ["corpusId", "apiKeySecretRef"],
  description: "A Nexus corpus: each message becomes a document.",
  "x-kubernetes-validations": [corpusKey.rule],
  properties: {
    corpusId: { type: "string", minLength: 1, maxLength: 128 },
    apiKeySecretRef: secretKeyRefSchema("tenant API key (editor or above) the documents are added with", "apiKey"),
    apiKey: corpusKey.property,
  },
};

const oneKind = `[${DESTINATION_KINDS.map((k) => `has(self.${k})`).join(", ")}].filter(x, x).size() == 1`;
const sameKind = DESTINATION_KINDS.map((k) => `has(self.${k}) == has(oldSelf.${k})`).join(" && ");

/** The Destination CRD: where workflows deliver; credentials only through Secret references. */
export function destinationCrd(): CustomResourceDefinition {
  return buildCrd({
    names: DESTINATION,
    description:
      "An integration destination (REST API, SQL database, NATS subject or Nexus corpus). Credentials come only from Secrets (secretRef, passwordSecretRef, apiKeySecretRef), never from the spec; the operator re-applies the destination when such a Secret changes. Deleting the object deletes the destination.",
    printerColumns: [
      ...readyAndTenantColumns,
      { name: "Type", type: "string", jsonPath: ".status.type" },
      { name: "Destination ID", type: "string", jsonPath: ".status.destinationId", priority: 1 },
      reasonColumn,
    ],
    spec: {
      type: "object",
      required: ["tenantRef"],
      "x-kubernetes-validations": [
        { rule: oneKind, message: "set exactly one of rest, sql, nats, corpus" },
        { rule: sameKind, message: "the destination type cannot change: create another Destination" },
      ],
      properties: { tenantRef: tenantRefSchema, rest, sql, nats, corpus },
    },
    status: {
      type: "object",
      properties: {
        ...integrationStatusProperties,
        destinationId: { type: "string", description: "The destination's id in Nexus." },
        type: { type: "string", enum: [...DESTINATION_KINDS], description: "Which kind of destination (printer column)." },
        secretVersion: {
          type: "string",
          description: "name@resourceVersion of the credential Secret last applied (a changed Secret is re-applied).",
        },
        conditions: conditionsSchema,
      },
    },
  });
}
