import { isReadOnlyMethod } from "../interceptors/write-freeze.js";

/**
 * Rate-limit route classes: `run` (a model run — the most expensive call), `mutation` (any RPC
 * that changes state), `read`, and `ops` (installation and audit operations: the audit log, dead
 * letters). Each class has its own buckets, so a run costs more of a key's allowance than a read.
 */
export type RouteClass = "run" | "mutation" | "read" | "ops";

/** Every route class, in the order documentation lists them. */
export const ROUTE_CLASSES: readonly RouteClass[] = ["run", "mutation", "read", "ops"];

const RUN_METHODS = new Set(["nexus.agent.v1.AgentService/Run"]);
const OPS_SERVICES = new Set(["nexus.audit.v1.AuditService"]);

/** The route class of an RPC, from its service and method names. */
export function routeClassOf(serviceTypeName: string, methodName: string): RouteClass {
  if (RUN_METHODS.has(`${serviceTypeName}/${methodName}`)) return "run";
  if (OPS_SERVICES.has(serviceTypeName) || /DeadLetter/.test(methodName)) return "ops";
  return isReadOnlyMethod(methodName) ? "read" : "mutation";
}
