export {
  type Aggregate,
  type CommandOptions,
  type CommandResult,
  executeCommand,
  executeInTransaction,
  recordFacts,
  type Versioned,
} from "./command.js";
