export {
  executeCommand,
  executeInTransaction,
  recordFacts,
  type Aggregate,
  type CommandOptions,
  type CommandResult,
  type Versioned,
} from "./command.js";
