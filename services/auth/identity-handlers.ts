import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { Role } from "../../gen/nexus/auth/v1/api_key_pb.js";
import type {
  AddMemberRequest,
  GetIdentityProviderRequest,
  GetMemberRequest,
  GetScimTokenRequest,
  IdentityService,
  ListMembersRequest,
  RemoveMemberRequest,
  RevokeScimTokenRequest,
  RotateScimTokenRequest,
  SetIdentityProviderRequest,
  SetMemberRoleRequest,
  SetPlatformOperatorRequest,
} from "../../gen/nexus/identity/v1/identity_service_pb.js";
import { roleToProto } from "../kernel/authz/access-recorder.js";
import { roleFromProto } from "../kernel/authz/principal-proto.js";
import { principalOf } from "../kernel/authz/tenant-scope.js";
import type { TenantRole } from "../kernel/context.js";
import { domainError } from "../kernel/errors.js";
import type { IdentityProviderConfig } from "./domain/identity-provider.js";
import type { ScimTokenState } from "./domain/scim-token.js";
import type { IdentityApplication, Member } from "./identity-application.js";
import type { ScimApplication } from "./scim-application.js";

function requiredRole(role: Role, field = "role"): TenantRole {
  const r = roleFromProto(role);
  if (r === undefined) throw domainError("INVALID_ARGUMENT", "a role is required", { field });
  return r;
}

function memberToMessage(m: Member) {
  return {
    userId: m.user.id,
    tenantId: m.membership.tenantId,
    email: m.user.email,
    displayName: m.user.displayName,
    role: roleToProto(m.membership.role),
    platformOperator: m.user.platformOperator,
    joinedAt: timestampFromDate(m.membership.joinedAt),
  };
}

function providerToMessage(p: IdentityProviderConfig) {
  return {
    tenantId: p.tenantId,
    issuer: p.issuer,
    audience: p.audience,
    clientId: p.clientId,
    clientSecretSet: p.clientSecretSealed !== "",
    scopes: [...p.scopes],
    allowedRedirectHosts: [...p.allowedRedirectHosts],
    clockSkewSeconds: p.clockSkewSeconds,
    userClaim: p.userClaim,
    groupsClaim: p.groupsClaim,
    jitEnabled: p.jitEnabled,
    defaultRole: roleToProto(p.defaultRole),
    groupRoles: Object.fromEntries(Object.entries(p.groupRoles).map(([g, r]) => [g, roleToProto(r)])),
    enabled: p.enabled,
    jwksUri: p.jwksUri,
    authorizationEndpoint: p.authorizationEndpoint,
    tokenEndpoint: p.tokenEndpoint,
    updatedAt: timestampFromDate(p.updatedAt),
  };
}

/**
 * nexus.identity.v1.IdentityService, served by the auth role: messages to the identity use
 * cases and back. Shapes are checked by protovalidate, callers by the permission table; tenant
 * scoping happens in the application through the principal.
 */
export class IdentityServiceHandlers implements ServiceImpl<typeof IdentityService> {
  constructor(
    private readonly app: IdentityApplication,
    private readonly scim: ScimApplication,
  ) {}

  async addMember(req: AddMemberRequest, ctx: HandlerContext) {
    const { member, userCreated } = await this.app.addMember(principalOf(ctx), {
      tenantId: req.tenantId,
      email: req.email,
      displayName: req.displayName,
      role: requiredRole(req.role),
    });
    return { member: memberToMessage(member), userCreated };
  }

  async getMember(req: GetMemberRequest, ctx: HandlerContext) {
    return { member: memberToMessage(await this.app.getMember(principalOf(ctx), req.tenantId, req.userId)) };
  }

  async listMembers(req: ListMembersRequest, ctx: HandlerContext) {
    const page = await this.app.listMembers(principalOf(ctx), { tenantId: req.tenantId, pageSize: req.pageSize, pageToken: req.pageToken });
    return { members: page.items.map(memberToMessage), nextPageToken: page.nextPageToken };
  }

  async setMemberRole(req: SetMemberRoleRequest, ctx: HandlerContext) {
    return { member: memberToMessage(await this.app.setMemberRole(principalOf(ctx), req.tenantId, req.userId, requiredRole(req.role))) };
  }

  async removeMember(req: RemoveMemberRequest, ctx: HandlerContext) {
    return { revokedKeyIds: await this.app.removeMember(principalOf(ctx), req.tenantId, req.userId) };
  }

  async setPlatformOperator(req: SetPlatformOperatorRequest, ctx: HandlerContext) {
    const user = await this.app.setPlatformOperator(principalOf(ctx), req.userId, req.platformOperator);
    return { userId: user.id, platformOperator: user.platformOperator };
  }

  async setIdentityProvider(req: SetIdentityProviderRequest, ctx: HandlerContext) {
    const groupRoles: Record<string, TenantRole> = {};
    for (const [group, role] of Object.entries(req.groupRoles)) groupRoles[group] = requiredRole(role, `group_roles[${group}]`);
    const provider = await this.app.setIdentityProvider(principalOf(ctx), {
      tenantId: req.tenantId,
      issuer: req.issuer,
      audience: req.audience,
      clientId: req.clientId,
      clientSecret: req.clientSecret,
      scopes: req.scopes,
      allowedRedirectHosts: req.allowedRedirectHosts,
      clockSkewSeconds: req.clockSkewSeconds,
      userClaim: req.userClaim,
      groupsClaim: req.groupsClaim,
      jitEnabled: req.jitEnabled,
      defaultRole: roleFromProto(req.defaultRole),
      groupRoles,
      enabled: req.enabled,
    });
    return { identityProvider: providerToMessage(provider) };
  }

  async getIdentityProvider(req: GetIdentityProviderRequest, ctx: HandlerContext) {
    return { identityProvider: providerToMessage(await this.app.getIdentityProvider(principalOf(ctx), req.tenantId)) };
  }

  async rotateScimToken(req: RotateScimTokenRequest, ctx: HandlerContext) {
    const { token, state } = await this.scim.rotateToken(principalOf(ctx), req.tenantId);
    return { token, scimToken: scimTokenToMessage(state) };
  }

  async getScimToken(req: GetScimTokenRequest, ctx: HandlerContext) {
    const state = await this.scim.getToken(principalOf(ctx), req.tenantId);
    return state === undefined ? {} : { scimToken: scimTokenToMessage(state) };
  }

  async revokeScimToken(req: RevokeScimTokenRequest, ctx: HandlerContext) {
    return { revoked: await this.scim.revokeToken(principalOf(ctx), req.tenantId) };
  }
}

function scimTokenToMessage(s: ScimTokenState) {
  return { tenantId: s.tenantId, tokenId: s.tokenId ?? "", createdAt: timestampFromDate(s.createdAt) };
}
