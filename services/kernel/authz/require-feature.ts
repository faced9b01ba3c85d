import type { Principal } from "../context.js";
import { authorizationRefusal } from "./refusal.js";

/**
 * The one way a service checks an entitlement: throws PERMISSION_DENIED reason
 * FEATURE_NOT_ENABLED (ErrorInfo metadata `feature_key`) unless the principal's tenant has
 * `featureKey` enabled. Platform principals are never feature-gated. An unknown key counts as
 * disabled (fail closed). The authorization interceptor records the refusal as one
 * rbac.forbidden event, so handlers just call this and let the error propagate.
 *
 *   requireFeature(principal, "feature.retrieval.aws_bedrock_kb");
 */
export function requireFeature(principal: Principal | undefined, featureKey: string): void {
  if (principal?.kind === "platform") return;
  if (principal?.entitlements.features[featureKey] === true) return;
  throw authorizationRefusal("FEATURE_NOT_ENABLED", `feature ${featureKey} is not enabled for this tenant's plan`, {
    feature_key: featureKey,
  });
}

/** True when the principal may use the feature (platform principals always may). */
export function hasFeature(principal: Principal | undefined, featureKey: string): boolean {
  return principal?.kind === "platform" || principal?.entitlements.features[featureKey] === true;
}
