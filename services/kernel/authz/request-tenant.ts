import type { DescMessage } from "@bufbuild/protobuf";

/** Name of the field that names a tenant in request messages. */
export const TENANT_ID_FIELD = "tenant_id";

/** True when requests of this type carry a top-level `tenant_id` string (plain or in a oneof). */
export function hasTenantIdField(desc: DescMessage): boolean {
  return desc.fields.some((f) => f.name === TENANT_ID_FIELD && f.fieldKind === "scalar");
}

/**
 * The `tenant_id` a request names, read generically from its descriptor so every RPC —
 * including ones added later — gets the tenant-boundary check. Undefined when the message has
 * no such field; "" when it is unset.
 */
export function requestTenantId(desc: DescMessage, message: unknown): string | undefined {
  const field = tenantFieldOf(desc);
  if (field === undefined || typeof message !== "object" || message === null) return undefined;
  const record = message as Record<string, unknown>;
  if (field.oneof !== undefined) {
    const group = record[field.oneof.localName] as { case?: string; value?: unknown } | undefined;
    return group?.case === field.localName && typeof group.value === "string" ? group.value : "";
  }
  const value = record[field.localName];
  return typeof value === "string" ? value : "";
}

/** Each message type's `tenant_id` field (null: none), looked up once per type, not per call. */
const tenantFields = new WeakMap<DescMessage, DescMessage["fields"][number] | null>();

function tenantFieldOf(desc: DescMessage): DescMessage["fields"][number] | undefined {
  let field = tenantFields.get(desc);
  if (field === undefined) {
    field = desc.fields.find((f) => f.name === TENANT_ID_FIELD && f.fieldKind === "scalar") ?? null;
    tenantFields.set(desc, field);
  }
  return field ?? undefined;
}
