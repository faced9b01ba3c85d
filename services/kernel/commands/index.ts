export {
  type Aggregate,
  type CommandOptions,
  type CommandResult,
  executeCommand,
  executeInTransaction,
  recordFacts,
  type Versioned,
} from "./command.js";
export {
  type EventSourcing,
  lockStream,
  type Rehydratable,
  type Rehydrated,
  type RehydrateOptions,
  rehydrate,
  snapshotIfDue,
} from "./rehydrate.js";
export {
  configureSnapshotThresholds,
  deleteSnapshot,
  loadSnapshot,
  SNAPSHOT_DEFAULTS,
  type SnapshotPolicy,
  type SnapshotThresholds,
  type SnapshotTrigger,
  type StoredSnapshot,
  saveSnapshot,
  snapshotDue,
  snapshotThresholds,
} from "./snapshots.js";
