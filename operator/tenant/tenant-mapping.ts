import { Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import { Plan } from "../../gen/nexus/auth/v1/tenant_pb.js";
import type { KeyRole, TenantPlan } from "../crds/types.js";

/** Tenant.spec.plan → Nexus Plan. */
export function planToProto(plan: TenantPlan): Plan {
  switch (plan) {
    case "free":
      return Plan.FREE;
    case "pro":
      return Plan.PRO;
    case "enterprise":
      return Plan.ENTERPRISE;
    default: {
      const _exhaustive: never = plan;
      throw new Error(`unknown plan ${String(_exhaustive)}`);
    }
  }
}

/** API key role in a Tenant spec → Nexus Role. */
export function roleToProto(role: KeyRole): Role {
  switch (role) {
    case "owner":
      return Role.OWNER;
    case "admin":
      return Role.ADMIN;
    case "editor":
      return Role.EDITOR;
    case "viewer":
      return Role.VIEWER;
    default: {
      const _exhaustive: never = role;
      throw new Error(`unknown role ${String(_exhaustive)}`);
    }
  }
}

/** Annotation that asks for the rotation of one key: `rotate.nexus.dev/<key name>: <any new value>`. */
export function rotationAnnotation(keyName: string): string {
  return `rotate.nexus.dev/${keyName}`;
}

/** Annotations and data keys of the Secrets the operator writes. */
export const SECRET_FIELDS = {
  /** Data key holding the plaintext API key (`nxs_…`). */
  apiKey: "apiKey",
  /** Data key holding the key id. */
  keyId: "keyId",
  /** Data key holding the tenant id. */
  tenantId: "tenantId",
  /** Annotation marking a Secret as written by the operator for this key id. */
  keyIdAnnotation: "nexus.dev/api-key-id",
  /** Label naming the Tenant object a Secret belongs to. */
  tenantLabel: "nexus.dev/tenant",
} as const;
