import type { ConnectRouter } from "@connectrpc/connect";
import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import type { MeteringHandler } from "./metering-handler.js";

/** Registers nexus.metering.v1.MeteringService on a router. */
export function registerMeteringRoutes(router: ConnectRouter, handler: MeteringHandler): void {
  router.service(MeteringService, handler);
}
