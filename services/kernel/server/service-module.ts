import type { ConnectRouter } from "@connectrpc/connect";

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
}
