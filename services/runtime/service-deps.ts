import type { Logger } from "pino";
import type { NexusConfig } from "../kernel/config.js";
import type { Database } from "../kernel/db/ports.js";
import type { EventBus } from "../kernel/events/ports.js";
import type { Peers } from "./peers.js";

/**
 * What every service receives from the process that hosts it (`nexus dev` or `nexus serve`):
 * its ports, never a global. Services keep their state in their own schema of `db`, publish
 * events only through the event store in their own transactions, and consume through `bus`.
 */
export interface ServiceDeps {
  config: NexusConfig;
  /** Child logger named after the service. */
  logger: Logger;
  db: Database;
  bus: EventBus;
  /** Wall clock; tests may pass a fixed or advancing clock. */
  clock: () => Date;
  /** gRPC transports to the other services (this process when it hosts them). */
  peers: Peers;
}
