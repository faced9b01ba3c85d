import { parseArgs } from "node:util";
import { GetSessionResponseSchema, ListSessionsResponseSchema } from "../../../gen/nexus/agent/v1/agent_service_pb.js";
import { MessageRole } from "../../../gen/nexus/agent/v1/session_pb.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";
import { describeCitation } from "./ask.js";
import { CLIENT_OPTIONS, clientFrom, printJson, when } from "./client-options.js";

function limitOf(raw: string | undefined, max: number, option: string): number {
  if (raw === undefined) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${option} must be an integer from 1 to ${max}`);
  return n;
}

/** `nexus sessions list`. */
export const sessionsListCommand: Command = {
  path: ["sessions", "list"],
  summary: "List your tenant's agent sessions, most recently used first",
  usage: "nexus sessions list [--corpus ID] [--limit N] [--page-token T] [--url URL] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, corpus: { type: "string" }, limit: { type: "string" }, "page-token": { type: "string" } },
      strict: true,
    });
    const res = await clientFrom(values).agent.listSessions({
      corpusId: values.corpus ?? "",
      pageSize: limitOf(values.limit, 200, "--limit"),
      pageToken: values["page-token"] ?? "",
    });
    if (values.json) {
      printJson(ListSessionsResponseSchema, res);
      return 0;
    }
    printTable(
      ["ID", "CORPUS", "MESSAGES", "UPDATED", "TITLE"],
      res.sessions.map((s) => [s.id, s.corpusId, String(s.messageCount), when(s.updatedAt), s.title]),
    );
    if (res.nextPageToken) console.log(`\nmore: nexus sessions list --page-token ${res.nextPageToken}`);
    return 0;
  },
};

/** `nexus sessions get`. */
export const sessionsGetCommand: Command = {
  path: ["sessions", "get"],
  summary: "Show a session with its most recent messages and their citations",
  usage: "nexus sessions get SESSION_ID [--limit N] [--url URL] [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { ...CLIENT_OPTIONS, limit: { type: "string" } },
      strict: true,
      allowPositionals: true,
    });
    const sessionId = positionals[0];
    if (!sessionId || positionals.length > 1) throw new UsageError("give exactly one SESSION_ID");
    const res = await clientFrom(values).agent.getSession({ sessionId, messageLimit: limitOf(values.limit, 500, "--limit") });
    if (values.json) {
      printJson(GetSessionResponseSchema, res);
      return 0;
    }
    const s = res.session;
    if (!s) return 1;
    console.log(`session ${s.id} · corpus ${s.corpusId} · ${s.messageCount} messages · updated ${when(s.updatedAt)}\n${s.title}\n`);
    for (const m of res.messages) {
      console.log(`${m.role === MessageRole.USER ? "you" : "nexus"} (${when(m.createdAt)}):\n${m.text}`);
      if (m.citations.length > 0) console.log(m.citations.map(describeCitation).join("\n"));
      console.log("");
    }
    return 0;
  },
};

/** `nexus sessions delete`. */
export const sessionsDeleteCommand: Command = {
  path: ["sessions", "delete"],
  summary: "Delete a session and all its messages",
  usage: "nexus sessions delete SESSION_ID [--url URL]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { ...CLIENT_OPTIONS }, strict: true, allowPositionals: true });
    const sessionId = positionals[0];
    if (!sessionId || positionals.length > 1) throw new UsageError("give exactly one SESSION_ID");
    await clientFrom(values).agent.deleteSession({ sessionId });
    console.log(`deleted session ${sessionId}`);
    return 0;
  },
};

/** Every `nexus sessions …` command. */
export const sessionsCommands: readonly Command[] = [sessionsListCommand, sessionsGetCommand, sessionsDeleteCommand];
