export { PROJECTION_HEALTH_PATH, type ProjectionMonitor, startProjectionMonitor } from "./monitor.js";
export type { Projection } from "./projection.js";
export { type ProjectionStatus, projectionStatus, type RebuildResult, rebuildProjection } from "./rebuild.js";
