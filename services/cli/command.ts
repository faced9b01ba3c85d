/**
 * One `nexus` sub-command. `run` receives the arguments after the command's own name(s) and
 * returns the process exit code. Commands print human-readable output on stdout and errors on
 * stderr; `--json` (where offered) prints machine-readable output instead.
 */
export interface Command {
  /** Words that select the command, e.g. ["dev"] or ["dlq", "list"]. */
  path: string[];
  /** One line for `nexus help`. */
  summary: string;
  /** Usage line(s) shown by `nexus <command> --help`. */
  usage: string;
  run(args: string[]): Promise<number>;
}

/** A usage error: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
