import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  type AuditService,
  type ExportAuditEventsRequest,
  type ExportAuditEventsResponse,
  ExportAuditEventsResponseSchema,
  type ListAuditEventsRequest,
  ListAuditEventsResponseSchema,
  type VerifyAuditChainRequest,
  VerifyAuditChainResponseSchema,
} from "../../gen/nexus/audit/v1/audit_service_pb.js";
import { requireFeature } from "../kernel/authz/require-feature.js";
import { principalOf } from "../kernel/authz/tenant-scope.js";
import type { Principal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import { counterPosition, pageTokens } from "../kernel/paging/index.js";
import type { AuditApplication } from "./audit-application.js";
import { csvHeader, csvRow } from "./audit-csv.js";
import { entryToMessage, queryBinding, queryOf } from "./proto-mapping.js";

/** ListAuditEvents page tokens: the last sequence returned, bound to the chain and filter. */
const auditPageTokens = pageTokens(counterPosition);

/** The entitlement tenants need to read their trail (pro and enterprise plans). */
export const AUDIT_FEATURE = "feature.audit_access";

/** Default and largest ListAuditEvents page. */
const DEFAULT_PAGE_SIZE = 50;

/** Entries per ExportAuditEvents piece. */
const EXPORT_ROWS_PER_PIECE = 500;

/**
 * The chain a call reads. Tenant principals: their own tenant, admins and owners only, with
 * the audit entitlement (the permission table enforces all three; checked again because a
 * handler never trusts its caller). Platform operators: the tenant they name, or — with
 * tenant_id empty — the installation-wide chain (platform keys, anonymous access failures).
 */
export function auditChainOf(principal: Principal, requested: string): string {
  if (principal.kind === "platform") return requested;
  if (principal.role !== "owner" && principal.role !== "admin") {
    throw domainError("RBAC_FORBIDDEN", `the ${principal.role} role cannot read the audit log; it needs admin or stronger`, {
      required_role: "admin",
    });
  }
  requireFeature(principal, AUDIT_FEATURE);
  if (requested !== "" && requested !== principal.tenantId) {
    throw domainError("TENANT_MISMATCH", "tenant_id names another tenant: a tenant key reads only its own audit log");
  }
  return principal.tenantId;
}

/** nexus.audit.v1.AuditService: list, export (CSV stream) and verify a tenant's trail. */
export class AuditHandler implements ServiceImpl<typeof AuditService> {
  constructor(private readonly app: AuditApplication) {}

  async listAuditEvents(req: ListAuditEventsRequest, ctx: HandlerContext) {
    const tenantId = auditChainOf(principalOf(ctx), req.tenantId);
    const q = queryOf(tenantId, req.filter);
    const binding = queryBinding(q);
    const before = auditPageTokens.decode(req.pageToken, binding);
    const page = await this.app.list(q, before, req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize);
    return create(ListAuditEventsResponseSchema, {
      events: page.entries.map(entryToMessage),
      nextPageToken: page.next === undefined ? "" : auditPageTokens.encode(page.next, binding),
    });
  }

  async *exportAuditEvents(req: ExportAuditEventsRequest, ctx: HandlerContext): AsyncGenerator<ExportAuditEventsResponse> {
    const tenantId = auditChainOf(principalOf(ctx), req.tenantId);
    const encoder = new TextEncoder();
    let header = csvHeader();
    for await (const rows of this.app.export(queryOf(tenantId, req.filter), EXPORT_ROWS_PER_PIECE)) {
      ctx.signal.throwIfAborted();
      yield create(ExportAuditEventsResponseSchema, { data: encoder.encode(header + rows.map(csvRow).join("")), rowCount: rows.length });
      header = "";
    }
    if (header !== "") yield create(ExportAuditEventsResponseSchema, { data: encoder.encode(header), rowCount: 0 });
  }

  async verifyAuditChain(req: VerifyAuditChainRequest, ctx: HandlerContext) {
    const tenantId = auditChainOf(principalOf(ctx), req.tenantId);
    const v = await this.app.verify(tenantId, ctx.signal);
    return create(VerifyAuditChainResponseSchema, {
      ok: v.ok,
      entriesChecked: BigInt(v.entriesChecked),
      headHash: v.headHash,
      verifiedAt: timestampFromDate(v.verifiedAt),
      ...(v.firstBrokenLink
        ? {
            firstBrokenLink: {
              sequence: BigInt(v.firstBrokenLink.sequence),
              eventId: v.firstBrokenLink.eventId,
              expectedHash: v.firstBrokenLink.expectedHash,
              actualHash: v.firstBrokenLink.actualHash,
              problem: v.firstBrokenLink.problem,
            },
          }
        : {}),
    });
  }
}
