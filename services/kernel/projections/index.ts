export type { Projection } from "./projection.js";
export { type ProjectionStatus, projectionStatus, type RebuildResult, rebuildProjection } from "./rebuild.js";
