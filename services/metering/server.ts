import { MeteringService } from "../../gen/nexus/metering/v1/metering_service_pb.js";
import { defineService } from "../kernel/service/index.js";
import { createMeteringParts } from "./metering-parts.js";
import { meteringMigrations } from "./migrations.js";
import { meteringTenantData } from "./tenant-data.js";

/**
 * The metering service (`nexus.metering.v1.MeteringService`): usage records from run events,
 * quotas with atomic reservations, usage reports, the billing webhook. It asks auth for
 * tenants' plans. `nexus dev` and `nexus serve --service metering` mount the same definition.
 */
export const meteringService = defineService({
  name: "metering",
  apis: [MeteringService],
  migrations: [meteringMigrations],
  dataDeleters: [meteringTenantData],
  peers: ["auth"],
  build: (ctx) => createMeteringParts(ctx),
});
