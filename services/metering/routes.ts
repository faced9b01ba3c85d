import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { type ApiHandler, handle } from "../kernel/service/index.js";
import type { MeteringHandler } from "./metering-handler.js";

/** nexus.metering.v1.MeteringService served by its handler. */
export function meteringRoutes(handler: MeteringHandler): ApiHandler {
  return handle(MeteringService, handler);
}
