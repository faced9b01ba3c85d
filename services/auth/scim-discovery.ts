import { SCIM_ENTERPRISE_USER_SCHEMA, SCIM_GROUP_SCHEMA, SCIM_LIST_SCHEMA, SCIM_USER_SCHEMA } from "./domain/scim.js";

/**
 * The SCIM discovery documents (RFC 7643 §5-7): ServiceProviderConfig, ResourceTypes and
 * Schemas, as Nexus serves them under `/scim/v2`. They hold no tenant data.
 */

const SPC_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema";

interface AttributeSpec {
  name: string;
  type?: "string" | "boolean" | "complex" | "reference" | "dateTime";
  multiValued?: boolean;
  required?: boolean;
  caseExact?: boolean;
  mutability?: "readOnly" | "readWrite" | "immutable" | "writeOnly";
  uniqueness?: "none" | "server";
  subAttributes?: AttributeSpec[];
}

function attribute(a: AttributeSpec): Record<string, unknown> {
  return {
    name: a.name,
    type: a.type ?? "string",
    multiValued: a.multiValued ?? false,
    description: "",
    required: a.required ?? false,
    caseExact: a.caseExact ?? false,
    mutability: a.mutability ?? "readWrite",
    returned: "default",
    uniqueness: a.uniqueness ?? "none",
    ...(a.subAttributes ? { subAttributes: a.subAttributes.map(attribute) } : {}),
  };
}

const multi = (name: string, extra: AttributeSpec[] = []): AttributeSpec => ({
  name,
  type: "complex",
  multiValued: true,
  subAttributes: [{ name: "value" }, { name: "display" }, { name: "type" }, { name: "primary", type: "boolean" }, ...extra],
});

const SCHEMAS: Record<string, { name: string; description: string; attributes: AttributeSpec[] }> = {
  [SCIM_USER_SCHEMA]: {
    name: "User",
    description: "A person; active users are members of the tenant",
    attributes: [
      { name: "userName", required: true, uniqueness: "server" },
      {
        name: "name",
        type: "complex",
        subAttributes: [
          { name: "formatted" },
          { name: "familyName" },
          { name: "givenName" },
          { name: "middleName" },
          { name: "honorificPrefix" },
          { name: "honorificSuffix" },
        ],
      },
      { name: "displayName" },
      { name: "nickName" },
      { name: "title" },
      { name: "userType" },
      { name: "preferredLanguage" },
      { name: "locale" },
      { name: "timezone" },
      { name: "active", type: "boolean" },
      multi("emails"),
      multi("phoneNumbers"),
      {
        name: "groups",
        type: "complex",
        multiValued: true,
        mutability: "readOnly",
        subAttributes: [
          { name: "value", mutability: "readOnly" },
          { name: "display", mutability: "readOnly" },
        ],
      },
    ],
  },
  [SCIM_GROUP_SCHEMA]: {
    name: "Group",
    description: "A group; its display name (or external id) maps to a role through the identity provider's group_roles",
    attributes: [
      { name: "displayName", required: true, uniqueness: "server" },
      {
        name: "members",
        type: "complex",
        multiValued: true,
        subAttributes: [
          { name: "value", mutability: "immutable", caseExact: true },
          { name: "display", mutability: "immutable" },
        ],
      },
    ],
  },
  [SCIM_ENTERPRISE_USER_SCHEMA]: {
    name: "EnterpriseUser",
    description: "Enterprise User (kept as sent)",
    attributes: [
      { name: "employeeNumber" },
      { name: "costCenter" },
      { name: "organization" },
      { name: "division" },
      { name: "department" },
      { name: "manager", type: "complex", subAttributes: [{ name: "value" }, { name: "displayName", mutability: "readOnly" }] },
    ],
  },
};

/** `/ServiceProviderConfig`. */
export function serviceProviderConfig(base: string, maxResults: number): Record<string, unknown> {
  return {
    schemas: [SPC_SCHEMA],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: true },
    authenticationSchemes: [
      {
        type: "oauthbearertoken",
        name: "OAuth Bearer Token",
        description: "The tenant's SCIM token (nexus scim token rotate) as Authorization: Bearer",
        primary: true,
      },
    ],
    meta: { resourceType: "ServiceProviderConfig", location: `${base}/ServiceProviderConfig` },
  };
}

function resourceType(name: "User" | "Group", base: string): Record<string, unknown> {
  return {
    schemas: [RESOURCE_TYPE_SCHEMA],
    id: name,
    name,
    endpoint: `/${name}s`,
    schema: name === "User" ? SCIM_USER_SCHEMA : SCIM_GROUP_SCHEMA,
    ...(name === "User" ? { schemaExtensions: [{ schema: SCIM_ENTERPRISE_USER_SCHEMA, required: false }] } : {}),
    meta: { resourceType: "ResourceType", location: `${base}/ResourceTypes/${name}` },
  };
}

/** `/ResourceTypes` or `/ResourceTypes/<name>` (undefined when unknown). */
export function resourceTypes(base: string, name?: string): Record<string, unknown> | undefined {
  if (name !== undefined) return name === "User" || name === "Group" ? resourceType(name, base) : undefined;
  const all = [resourceType("User", base), resourceType("Group", base)];
  return { schemas: [SCIM_LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all };
}

function schema(id: string, base: string): Record<string, unknown> | undefined {
  const s = SCHEMAS[id];
  if (s === undefined) return undefined;
  return {
    schemas: [SCHEMA_SCHEMA],
    id,
    name: s.name,
    description: s.description,
    attributes: s.attributes.map(attribute),
    meta: { resourceType: "Schema", location: `${base}/Schemas/${id}` },
  };
}

/** `/Schemas` or `/Schemas/<urn>` (undefined when unknown). */
export function schemas(base: string, id?: string): Record<string, unknown> | undefined {
  if (id !== undefined) return schema(id, base);
  const all = Object.keys(SCHEMAS).map((k) => schema(k, base));
  return { schemas: [SCIM_LIST_SCHEMA], totalResults: all.length, startIndex: 1, itemsPerPage: all.length, Resources: all };
}
