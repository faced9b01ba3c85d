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
  deleteSnapshot,
  loadSnapshot,
  SNAPSHOT_DEFAULTS,
  type SnapshotPolicy,
  type SnapshotTrigger,
  type StoredSnapshot,
  saveSnapshot,
  snapshotDue,
} from "./snapshots.js";
