import type { DescMessage } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { type Principal, principalKey, type TenantRole } from "../context.js";
import { domainError, errorMetadata, errorReason } from "../errors.js";
import { PUBLIC_SERVICES } from "../server/server.js";
import type { AccessRecorder } from "./access-recorder.js";
import { type AuthorizationDecision, authorize, type ForbiddenReason } from "./authorize.js";
import { authRefusals } from "./metrics.js";
import { type Permission, ruleOfMethod } from "./permissions.js";
import { takeUnrecordedRefusal } from "./refusal.js";
import { requestTenantId } from "./request-tenant.js";

const ROLES: ReadonlySet<string> = new Set(["owner", "admin", "editor", "viewer"]);

/** Options of {@link createAuthorizationInterceptor}. */
export interface AuthorizationInterceptorOptions {
  recorder: AccessRecorder;
}

/**
 * The authorization interceptor: enforces THE permission table (permissions.ts) on every
 * call after the gate attached the principal — class and role, the tenant boundary
 * (a tenant principal naming another tenant's `tenant_id` → PERMISSION_DENIED
 * TENANT_MISMATCH, checked on every request message, streams included) and the RPC's
 * required feature. Each refusal is recorded as one rbac.forbidden event, including the
 * refusals handlers raise (`requireFeature`, `authorizationRefusal`, `tenantScope`).
 */
export function createAuthorizationInterceptor(options: AuthorizationInterceptorOptions): Interceptor {
  const { recorder } = options;
  // Not an async function: a call with nothing to check goes straight on, without a frame of its own.
  return (next) => (req) => {
    // Health and reflection: infrastructure the server exempts from the gate as well.
    if (PUBLIC_SERVICES.includes(req.service.typeName)) return next(req);
    const { procedure, permission } = ruleOfMethod(req.method);
    if (permission?.class === "public") return next(req);
    if (req.stream) return authorized(next, req, procedure, permission);
    // A unary request: decided here, synchronously; an allowed call goes on with one
    // continuation (a handler's refusal recorded, a streamed answer guarded) and no async frame.
    const principal = req.contextValues.get(principalKey);
    const first = authorize({ permission, principal, requestTenantId: requestTenantId(req.method.input as DescMessage, req.message) });
    if (first.kind === "denied") return authorized(next, req, procedure, permission);
    let pending: ReturnType<typeof next>;
    try {
      pending = next(req);
    } catch (err) {
      return recordHandlerRefusal(principal, procedure, err);
    }
    return pending.then(
      (res) => (res.stream ? authorized(next, req, procedure, permission, res) : res),
      (err: unknown) => recordHandlerRefusal(principal, procedure, err),
    );
  };

  async function recordHandlerRefusal(principal: Principal | undefined, procedure: string, err: unknown): Promise<never> {
    if (principal !== undefined && takeUnrecordedRefusal(err)) {
      const reason = (errorReason(err) ?? "RBAC_FORBIDDEN") as ForbiddenReason;
      const meta = errorMetadata(err);
      authRefusals.inc({ reason });
      await recorder.rbacForbidden({
        principal,
        procedure,
        reason,
        requiredRole: ROLES.has(meta.required_role ?? "") ? (meta.required_role as TenantRole) : undefined,
        featureKey: meta.feature_key,
      });
    }
    throw err;
  }

  async function authorized(
    next: Parameters<Interceptor>[0],
    req: Parameters<ReturnType<Interceptor>>[0],
    procedure: string,
    permission: Permission | undefined,
    /** A unary call's streamed answer, already obtained: only its stream is to be guarded. */
    answered?: Awaited<ReturnType<Parameters<Interceptor>[0]>>,
  ): ReturnType<ReturnType<Interceptor>> {
    const principal = req.contextValues.get(principalKey);

    const refuse = async (decision: Extract<AuthorizationDecision, { kind: "denied" }>): Promise<never> => {
      authRefusals.inc({ reason: decision.reason });
      if (principal !== undefined) {
        await recorder.rbacForbidden({
          principal,
          procedure,
          reason: decision.reason,
          requiredRole: decision.requiredRole,
          featureKey: decision.featureKey,
        });
      }
      throw domainError(decision.reason, decision.message, {
        procedure,
        ...(decision.requiredRole ? { required_role: decision.requiredRole } : {}),
        ...(decision.featureKey ? { feature_key: decision.featureKey } : {}),
      });
    };
    const check = (message: unknown): AuthorizationDecision =>
      authorize({ permission, principal, requestTenantId: requestTenantId(req.method.input as DescMessage, message) });

    if (answered === undefined) {
      const first = check(req.stream ? undefined : req.message);
      if (first.kind === "denied") return refuse(first);
    }

    let call = req;
    if (req.stream) {
      // Client streams: check each message's tenant_id as it arrives.
      const source = req.message;
      const checked = async function* () {
        for await (const m of source) {
          const d = check(m);
          if (d.kind === "denied") await refuse(d);
          yield m;
        }
      };
      call = { ...req, message: checked() };
    }
    let res: Awaited<ReturnType<typeof next>>;
    if (answered !== undefined) res = answered;
    else {
      try {
        res = await next(call);
      } catch (err) {
        return recordHandlerRefusal(principal, procedure, err);
      }
    }
    if (!res.stream) return res;
    const output = res.message;
    const guarded = async function* () {
      try {
        yield* output;
      } catch (err) {
        await recordHandlerRefusal(principal, procedure, err);
      }
    };
    return { ...res, message: guarded() };
  }
}
