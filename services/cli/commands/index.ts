import type { Command } from "../command.js";
import { adminCommands } from "./admin.js";
import { askCommand } from "./ask.js";
import { auditCommands } from "./audit.js";
import { backupCommands } from "./backup.js";
import { corporaCommands } from "./corpora.js";
import { devCommand } from "./dev.js";
import { dlqListCommand, dlqReplayCommand } from "./dlq.js";
import { docsCommands } from "./docs.js";
import { edgeCommand } from "./edge.js";
import { governanceCommands } from "./governance.js";
import { ingestCommand } from "./ingest.js";
import { integrationCommands } from "./integration.js";
import { keyringCommands } from "./keyring.js";
import { keysCommands } from "./keys.js";
import { membersCommands } from "./members.js";
import { migrateCommand } from "./migrate.js";
import { modulesCommands } from "./modules.js";
import { operatorCommand } from "./operator.js";
import { projectionsCommands } from "./projections.js";
import { quotaCommands } from "./quota.js";
import { sagasCommands } from "./sagas.js";
import { scimCommands } from "./scim.js";
import { searchCommand } from "./search.js";
import { serveCommand } from "./serve.js";
import { sessionsCommands } from "./sessions.js";
import { tenantsCommands } from "./tenants.js";
import { usageCommands } from "./usage.js";
import { whoamiCommand } from "./whoami.js";

/** Every `nexus` command, in help order. */
export const commands: readonly Command[] = [
  devCommand,
  serveCommand,
  migrateCommand,
  dlqListCommand,
  dlqReplayCommand,
  ...projectionsCommands,
  ...sagasCommands,
  operatorCommand,
  edgeCommand,
  ...tenantsCommands,
  ...keysCommands,
  ...membersCommands,
  ...scimCommands,
  whoamiCommand,
  ...adminCommands,
  ...usageCommands,
  ...quotaCommands,
  ...auditCommands,
  askCommand,
  ...sessionsCommands,
  ...corporaCommands,
  ingestCommand,
  ...integrationCommands,
  ...docsCommands,
  searchCommand,
  ...keyringCommands,
  ...governanceCommands,
  ...backupCommands,
  ...modulesCommands,
];

/** The commands as a Markdown table (README). */
export function commandsMarkdown(): string {
  const cell = (t: string) => t.replaceAll("|", "\\|");
  const rows = commands.map((c) => `| \`${cell(c.usage.split("\n")[0] ?? "")}\` | ${cell(c.summary)} |`);
  return ["| Command | What it does |", "|---|---|", ...rows].join("\n");
}
