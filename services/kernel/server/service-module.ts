import type { ConnectRouter } from "@connectrpc/connect";
import type { NodeRequest, NodeResponse } from "./node-http.js";

/**
 * Outcome of a readiness check. `reason` says what is wrong when not ready (shown in /readyz
 * and logs; keep it free of secrets).
 */
export interface ReadinessResult {
  ready: boolean;
  reason?: string;
  /**
   * Facts about the dependency shown with the check in /readyz whether it passes or not (e.g.
   * the database endpoint in use, which a failover's verification compares with its target).
   * Keep it free of secrets.
   */
  info?: Record<string, string>;
}

/**
 * A plain HTTP endpoint a service serves beside its RPCs, for clients that cannot speak an RPC
 * protocol: drop-in compatible ingress (`POST /ingress`), SCIM (`/scim/v2/...`), OIDC callbacks,
 * static files (`/console`). The server matches `path` exactly, or as a prefix when `prefix` is
 * set (`/scim/v2` matches `/scim/v2` and `/scim/v2/Users/1`, not `/scim/v2x`), before the RPC
 * routes; a method not in `methods` gets 405. The handler authenticates the request itself (no
 * RPC interceptor runs), answers, and must not throw (a thrown error or rejected promise is
 * logged and answered 500 without details). Graceful shutdown waits for it like for an RPC.
 */
export interface HttpRoute {
  path: string;
  prefix?: boolean;
  /** Default: every method. */
  methods?: readonly string[];
  handle(req: NodeRequest, res: NodeResponse): void | Promise<void>;
}

/** A readiness check: resolves with the outcome; a throw or a timeout counts as not ready. */
export type ReadinessCheck = () => Promise<ReadinessResult>;

/**
 * One service as the kernel server mounts it. Every Nexus service exports one; `nexus dev`
 * mounts all five on one server, `nexus serve --service x` mounts one.
 */
export interface ServiceModule {
  /** Full protobuf service name, e.g. "nexus.auth.v1.AuthService"; its grpc.health.v1 name. */
  name: string;
  /** Registers the implementation(s) on the router (`router.service(AuthService, impl)`). */
  register(router: ConnectRouter): void;
  /**
   * Whether the service can do its work (database reachable, consumers alive). While it
   * fails, health reports NOT_SERVING for this service and /readyz fails. Default: ready.
   */
  readiness?: ReadinessCheck;
  /**
   * Stops the module's background work (consumers drain, timers stop) during graceful
   * shutdown, after in-flight RPCs finished. Modules are stopped in reverse mount order.
   */
  shutdown?: () => Promise<void>;
  /** Plain HTTP endpoints of the module (see {@link HttpRoute}). */
  httpRoutes?: readonly HttpRoute[];
}
