import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import {
  AuthenticateResponseSchema,
  type AuthService,
  type CreateApiKeyRequest,
  type GetTenantAtRequest,
  type ListApiKeysRequest,
  type ListTenantsRequest,
  type RotateApiKeyRequest,
  type UpdateTenantRequest,
} from "../../gen/nexus/auth/v1/auth_service_pb.js";
import { TenantStatus } from "../../gen/nexus/auth/v1/tenant_pb.js";
import type { AccessRecorder } from "../kernel/authz/access-recorder.js";
import type { AuthAttemptLimiter } from "../kernel/authz/auth-attempt-limiter.js";
import { admitAttempt, claimedKeyIdOf } from "../kernel/authz/authentication-gate.js";
import { AUTH_PEER_HEADER, AUTH_PROCEDURE_HEADER, credentialKey } from "../kernel/authz/authenticator.js";
import { sessionKey, userIdKey } from "../kernel/authz/cache-invalidation.js";
import { type ClientAddressResolver, clientAddressOfCall } from "../kernel/authz/client-address.js";
import { planFromProto, principalToProto, roleFromProto } from "../kernel/authz/principal-proto.js";
import { principalOf } from "../kernel/authz/tenant-scope.js";
import type { Principal } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import { fromMesh } from "../kernel/limits/mesh-token.js";
import type { AuthApplication, TenantChangeOptions } from "./auth-application.js";
import type { KeyStatus } from "./domain/api-key.js";
import { apiKeyToMessage, overridesFromMessage, statusFromProto, tenantToMessage } from "./proto-mapping.js";
import type { TenantHistory } from "./tenant-history.js";

const AUTHENTICATE_PROCEDURE = "/nexus.auth.v1.AuthService/Authenticate";
const PROCEDURE = /^\/[A-Za-z0-9_.]{1,200}\/[A-Za-z0-9_]{1,100}$/;

function requiredPlan(plan: number, field = "plan") {
  const p = planFromProto(plan);
  if (p === undefined) throw domainError("INVALID_ARGUMENT", "a plan is required", { field });
  return p;
}

function requiredRole(role: number, field = "role") {
  const r = roleFromProto(role);
  if (r === undefined) throw domainError("INVALID_ARGUMENT", "a role is required", { field });
  return r;
}

/**
 * nexus.auth.v1.AuthService: translates messages to the application's use cases and back.
 * Shape checks live in the proto (protovalidate); who may call what lives in the permission
 * table; what remains here is tenant scoping through the principal.
 */

/**
 * The proto of a principal, built once per principal object: the gate's principals are frozen
 * and shared by every call of a key until its cache entry goes, so WhoAmI reuses the message.
 */
const principalMessages = new WeakMap<Principal, ReturnType<typeof principalToProto>>();
function principalMessageOf(principal: Principal): ReturnType<typeof principalToProto> {
  if (!Object.isFrozen(principal)) return principalToProto(principal);
  let message = principalMessages.get(principal);
  if (message === undefined) {
    message = principalToProto(principal);
    principalMessages.set(principal, message);
  }
  return message;
}

/** The API key messages of cached (frozen) key records, by the status they were made with (it moves with time). */
const keyMessages = new WeakMap<object, { status: KeyStatus; message: ReturnType<typeof apiKeyToMessage> }>();

/** {@link apiKeyToMessage}, made once per cached key record and status instead of per call. */
function keyMessageOf(key: Parameters<typeof apiKeyToMessage>[0], status: KeyStatus): ReturnType<typeof apiKeyToMessage> {
  if (!Object.isFrozen(key)) return apiKeyToMessage(key, status);
  const memo = keyMessages.get(key);
  if (memo !== undefined && memo.status === status) return memo.message;
  const message = apiKeyToMessage(key, status);
  keyMessages.set(key, { status, message });
  return message;
}

/** The optimistic-concurrency option of a tenant change request (unset: none). */
function expected(req: { expectedVersion?: bigint }): TenantChangeOptions {
  return req.expectedVersion === undefined ? {} : { expectedVersion: Number(req.expectedVersion) };
}

export class AuthServiceHandlers implements ServiceImpl<typeof AuthService> {
  constructor(
    private readonly app: AuthApplication,
    private readonly history: TenantHistory,
    private readonly attempts: AuthenticateAttempts,
  ) {}

  async createTenant(req: { slug: string; displayName: string; plan: number }, ctx: HandlerContext) {
    const tenant = await this.app.createTenant(principalOf(ctx), {
      slug: req.slug,
      displayName: req.displayName,
      plan: requiredPlan(req.plan),
    });
    return { tenant: tenantToMessage(tenant) };
  }

  async getTenant(
    req: { selector: { case: "tenantId" | "slug"; value: string } | { case: undefined; value?: undefined } },
    ctx: HandlerContext,
  ) {
    const s = req.selector;
    if (s.case === undefined) throw domainError("INVALID_ARGUMENT", "give tenant_id or slug", { field: "selector" });
    const tenant = await this.app.getTenant(principalOf(ctx), s.case === "tenantId" ? { tenantId: s.value } : { slug: s.value });
    return { tenant: tenantToMessage(tenant) };
  }

  async getTenantAt(req: GetTenantAtRequest, ctx: HandlerContext) {
    const p = req.point;
    if (p.case === undefined) throw domainError("INVALID_ARGUMENT", "give as_of or version", { field: "point" });
    const point = p.case === "asOf" ? { asOf: timestampDate(p.value) } : { version: Number(p.value) };
    return { tenant: tenantToMessage(await this.history.at(principalOf(ctx), req.tenantId, point)) };
  }

  async listTenants(req: ListTenantsRequest) {
    const plan = planFromProto(req.plan);
    const status = req.status === TenantStatus.ACTIVE ? "active" : req.status === TenantStatus.SUSPENDED ? "suspended" : undefined;
    const page = await this.app.listTenants({ status, plan, pageSize: req.pageSize, pageToken: req.pageToken });
    return { tenants: page.items.map(tenantToMessage), nextPageToken: page.nextPageToken };
  }

  async suspendTenant(req: { tenantId: string; reason: string; expectedVersion?: bigint }, ctx: HandlerContext) {
    return { tenant: tenantToMessage(await this.app.suspendTenant(principalOf(ctx), req.tenantId, req.reason, expected(req))) };
  }

  async resumeTenant(req: { tenantId: string; expectedVersion?: bigint }, ctx: HandlerContext) {
    return { tenant: tenantToMessage(await this.app.resumeTenant(principalOf(ctx), req.tenantId, expected(req))) };
  }

  async setPlan(req: { tenantId: string; plan: number; expectedVersion?: bigint }, ctx: HandlerContext) {
    return { tenant: tenantToMessage(await this.app.setPlan(principalOf(ctx), req.tenantId, requiredPlan(req.plan), expected(req))) };
  }

  async setEntitlementOverrides(
    req: { tenantId: string; overrides?: Parameters<typeof overridesFromMessage>[0]; expectedVersion?: bigint },
    ctx: HandlerContext,
  ) {
    const tenant = await this.app.setEntitlementOverrides(
      principalOf(ctx),
      req.tenantId,
      overridesFromMessage(req.overrides),
      expected(req),
    );
    return { tenant: tenantToMessage(tenant) };
  }

  /** UpdateTenant: applies the fields named in update_mask (protovalidate admits only display_name). */
  async updateTenant(req: UpdateTenantRequest, ctx: HandlerContext) {
    const paths = new Set(req.updateMask?.paths ?? []);
    if (paths.size === 0) throw domainError("INVALID_ARGUMENT", "update_mask must name at least one field", { field: "update_mask" });
    const unknown = [...paths].filter((p) => p !== "display_name");
    if (unknown.length > 0) {
      throw domainError("INVALID_ARGUMENT", `update_mask may name only display_name, not ${unknown.join(", ")}`, { field: "update_mask" });
    }
    const tenant = await this.app.setDisplayName(principalOf(ctx), req.tenantId, req.displayName, expected(req));
    return { tenant: tenantToMessage(tenant) };
  }

  async createApiKey(req: CreateApiKeyRequest, ctx: HandlerContext) {
    const issued = await this.app.createApiKey(principalOf(ctx), {
      tenantId: req.tenantId,
      name: req.name,
      role: req.platformKey ? undefined : requiredRole(req.role),
      expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : undefined,
      platformKey: req.platformKey,
      ...(req.ownerUserId ? { ownerUserId: req.ownerUserId } : {}),
    });
    return { apiKey: apiKeyToMessage(issued.key, this.app.statusOf(issued.key)), plaintextKey: issued.plaintext };
  }

  async listApiKeys(req: ListApiKeysRequest, ctx: HandlerContext) {
    const statuses = req.statuses.map((s) => statusFromProto(s)).filter((s): s is KeyStatus => s !== undefined);
    const page = await this.app.listApiKeys(principalOf(ctx), {
      tenantId: req.tenantId,
      platformKeys: req.platformKeys,
      statuses,
      pageSize: req.pageSize,
      pageToken: req.pageToken,
    });
    return { apiKeys: page.items.map((k) => apiKeyToMessage(k, this.app.statusOf(k))), nextPageToken: page.nextPageToken };
  }

  async getApiKey(req: { keyId: string }, ctx: HandlerContext) {
    const key = await this.app.getApiKey(principalOf(ctx), req.keyId);
    return { apiKey: apiKeyToMessage(key, this.app.statusOf(key)) };
  }

  async revokeApiKey(req: { keyId: string; reason: string }, ctx: HandlerContext) {
    const key = await this.app.revokeApiKey(principalOf(ctx), req.keyId, req.reason);
    return { apiKey: apiKeyToMessage(key, this.app.statusOf(key)) };
  }

  async rotateApiKey(req: RotateApiKeyRequest, ctx: HandlerContext) {
    const graceMs = req.gracePeriod ? Number(req.gracePeriod.seconds) * 1000 + Math.floor(req.gracePeriod.nanos / 1_000_000) : undefined;
    const { successor, previous } = await this.app.rotateApiKey(principalOf(ctx), req.keyId, {
      graceMs,
      expiresAt: req.expiresAt ? timestampDate(req.expiresAt) : undefined,
    });
    return {
      apiKey: apiKeyToMessage(successor.key, this.app.statusOf(successor.key)),
      plaintextKey: successor.plaintext,
      previousApiKey: apiKeyToMessage(previous, this.app.statusOf(previous)),
    };
  }

  async reactivateApiKey(req: { keyId: string }, ctx: HandlerContext) {
    const key = await this.app.reactivateApiKey(principalOf(ctx), req.keyId);
    return { apiKey: apiKeyToMessage(key, this.app.statusOf(key)) };
  }

  async setApiKeyRole(req: { keyId: string; role: number }, ctx: HandlerContext) {
    const key = await this.app.setApiKeyRole(principalOf(ctx), req.keyId, requiredRole(req.role));
    return { apiKey: apiKeyToMessage(key, this.app.statusOf(key)) };
  }

  /**
   * Public (no key needed to call it): the key under test is in the body. Gates of other
   * processes pass the procedure they guard in x-nexus-auth-procedure so the refusal is
   * recorded — here, once — against the call that was really refused.
   */
  async authenticate(req: { apiKey: string; accessToken: string }, ctx: HandlerContext) {
    const asked = ctx.requestHeader.get(AUTH_PROCEDURE_HEADER);
    const procedure = asked && PROCEDURE.test(asked) ? asked : AUTHENTICATE_PROCEDURE;
    const presented = req.apiKey || req.accessToken;
    if (!presented) throw domainError("AUTH_UNAUTHORIZED", "send an api_key or an access_token");
    // A gate of another process (mesh token) limited its caller already and names the client's
    // address in x-nexus-auth-peer; anyone else calling this public RPC directly passes the same
    // refused-authentication limiter as at a gate, and its address is resolved here (a header
    // it sent names nothing: X-Forwarded-For counts only from a trusted proxy).
    const fromGate = fromMesh(ctx.requestHeader, await this.attempts.meshToken());
    const attempts = fromGate ? undefined : this.attempts;
    const clientAddress = attempts ? clientAddressOfCall(attempts.clientAddress, ctx) : undefined;
    const peer = fromGate ? ctx.requestHeader.get(AUTH_PEER_HEADER)?.slice(0, 100) || undefined : clientAddress;
    const keyId = claimedKeyIdOf(presented);
    const throttled = attempts && (await admitAttempt(attempts.limiter, attempts.recorder, { clientAddress, keyId, presented, procedure }));
    if (throttled) throw throttled;
    const result = await this.app.authenticate(presented, { procedure, signal: ctx.signal, ...(peer ? { peerAddress: peer } : {}) });
    if (result.kind === "refused") {
      attempts?.limiter.refused(clientAddress, keyId);
      throw domainError(result.reason, result.message);
    }
    attempts?.limiter.succeeded(presented);
    return create(AuthenticateResponseSchema, {
      principal: principalToProto(result.principal),
      ...(result.validUntil ? { validUntil: timestampFromDate(result.validUntil) } : {}),
    });
  }

  async whoAmI(_req: unknown, ctx: HandlerContext) {
    const principal = principalOf(ctx);
    // A person signed in (access token or session) holds no API key: the principal is the answer.
    if (
      (principal.kind === "tenant" &&
        principal.userId &&
        (principal.keyId === userIdKey(principal.userId) || principal.keyId.startsWith(sessionKey("")))) ||
      // A platform operator with the installation issuer's token (NEXUS_PLATFORM_OIDC_ISSUER).
      (principal.kind === "platform" && principal.keyId.startsWith(userIdKey("")))
    ) {
      return { principal: principalToProto(principal) };
    }
    const key = await this.app.ownKey(principal, ctx.values.get(credentialKey));
    return { principal: principalMessageOf(principal), apiKey: keyMessageOf(key, this.app.statusOf(key)) };
  }
}

/** The refused-authentication limiter of AuthService.Authenticate for direct callers (docs/security.md). */
export interface AuthenticateAttempts {
  limiter: AuthAttemptLimiter;
  recorder: AccessRecorder;
  /** The caller's address (createClientAddressResolver with NEXUS_TRUSTED_PROXIES). */
  clientAddress: ClientAddressResolver;
  /** The installation's mesh token: calls carrying it come from other processes' gates and are not limited again. */
  meshToken: () => Promise<string>;
}
