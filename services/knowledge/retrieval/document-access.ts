import type { TenantRole } from "../../kernel/context.js";

/**
 * Document access (issue 16): who may read a document. A document is unrestricted (every member
 * of the tenant reads it) until an admin restricts it; a restricted document is read only by
 * callers one of its unexpired grants admits — a user, a group of the caller's identity provider
 * token, members with at least a role, or everyone in the tenant. The check runs inside the
 * search SQL (adapters/postgres-search-index.ts), so top-k is the best k the caller may read,
 * and Run, which searches with the caller's credentials, cites only those passages.
 * Admins do not bypass it.
 */

/** Who a grant admits. */
export type GranteeKind = "user" | "group" | "role" | "tenant";

/** One grant. */
export interface DocumentGrant {
  kind: GranteeKind;
  /** User id, group name or role; "" for tenant. */
  grantee: string;
  expiresAt: Date | undefined;
}

/** A document's access list. */
export interface DocumentAccess {
  tenantId: string;
  documentId: string;
  restricted: boolean;
  grants: readonly DocumentGrant[];
  /** The uploader (owner grant: always reads the document); "" for machine uploads. */
  ownerUserId: string;
}

// ---- Events ----

/** The access list was replaced. */
export interface DocumentAccessChanged {
  type: "DocumentAccessChanged";
  access: DocumentAccess;
}

/** Every document access event. */
export type DocumentAccessEvent = DocumentAccessChanged;

// ---- Commands ----

/** Replace the access list. */
export interface SetDocumentAccess {
  type: "SetDocumentAccess";
  restricted: boolean;
  grants: readonly DocumentGrant[];
}

/** Record the uploader as the document's owner (once: the first person to upload it). */
export interface RecordOwner {
  type: "RecordOwner";
  userId: string;
}

/** Every document access command. */
export type DocumentAccessCommand = SetDocumentAccess | RecordOwner;

/** Decides: nothing when the list is unchanged. */
export function decideDocumentAccess(
  command: DocumentAccessCommand,
  state: DocumentAccess | undefined,
  key: { tenantId: string; documentId: string },
): DocumentAccessEvent[] {
  if (command.type === "RecordOwner") {
    if (state?.ownerUserId) return [];
    return [{ type: "DocumentAccessChanged", access: { ...key, restricted: false, grants: [], ...state, ownerUserId: command.userId } }];
  }
  const next: DocumentAccess = {
    ...key,
    restricted: command.restricted,
    grants: normalized(command.grants),
    ownerUserId: state?.ownerUserId ?? "",
  };
  if (state !== undefined && same(state, next)) return [];
  if (state === undefined && !next.restricted && next.grants.length === 0) return [];
  return [{ type: "DocumentAccessChanged", access: next }];
}

/** Applies an event. */
export function evolveDocumentAccess(_state: DocumentAccess | undefined, event: DocumentAccessEvent): DocumentAccess {
  return event.access;
}

/** The roles a caller with `role` holds for role grants: its own and every weaker one. */
export function rolesAtOrBelow(role: TenantRole): TenantRole[] {
  const order: TenantRole[] = ["viewer", "editor", "admin", "owner"];
  return order.slice(0, order.indexOf(role) + 1);
}

/** A grant as text ("<kind>:<grantee>"), the form events carry. */
export function grantText(g: DocumentGrant): string {
  return `${g.kind}:${g.grantee}${g.expiresAt ? `@${g.expiresAt.toISOString()}` : ""}`;
}

function normalized(grants: readonly DocumentGrant[]): DocumentGrant[] {
  const byKey = new Map<string, DocumentGrant>();
  for (const g of grants)
    byKey.set(`${g.kind}:${g.kind === "tenant" ? "" : g.grantee}`, { ...g, grantee: g.kind === "tenant" ? "" : g.grantee });
  return [...byKey.values()].sort((a, b) => grantText(a).localeCompare(grantText(b)));
}

function same(a: DocumentAccess, b: DocumentAccess): boolean {
  return a.restricted === b.restricted && a.grants.map(grantText).join("\n") === b.grants.map(grantText).join("\n");
}
