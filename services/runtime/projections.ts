import { tenantsProjection } from "../auth/tenant-projection.js";
import type { Projection } from "../kernel/projections/index.js";

/** Every projection `nexus projections` can list, inspect and rebuild, by name. */
export const PROJECTIONS: readonly Projection[] = [tenantsProjection];

/** The projection named `name`, or undefined. */
export function projectionNamed(name: string): Projection | undefined {
  return PROJECTIONS.find((p) => p.name === name);
}
