import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import type { EventBus } from "../../kernel/events/ports.js";
import { createLogger } from "../../kernel/logger.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";

async function withBus<T>(fn: (bus: EventBus) => Promise<T>): Promise<T> {
  // Loaded on use: `nexus help` and client commands start without the whole mesh.
  const { createBus } = await import("../../runtime/create-bus.js");
  const { openDatabase } = await import("../../runtime/start-nexus.js");
  const config = loadConfig();
  const logger = createLogger({ level: "warn", pretty: config.logPretty, name: "nexus-dlq" });
  const db = await openDatabase(config);
  try {
    const bus = await createBus({ config, db, logger, relay: false });
    await bus.start();
    try {
      return await fn(bus);
    } finally {
      await bus.close();
    }
  } finally {
    await db.close();
  }
}

/** `nexus dlq list`: dead-lettered events with their last error. */
export const dlqListCommand: Command = {
  path: ["dlq", "list"],
  summary: "List dead-lettered events (NATS_URL's DLQ stream, else the embedded local bus)",
  usage: "nexus dlq list [--consumer NAME] [--limit 100] [--json]",
  async run(args) {
    const { values } = parseArgs({
      args,
      options: { consumer: { type: "string" }, limit: { type: "string" }, json: { type: "boolean" } },
      strict: true,
    });
    const limit = values.limit === undefined ? 100 : Number(values.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) throw new UsageError("--limit must be an integer from 1 to 10000");
    const letters = await withBus((bus) => bus.deadLetters.list({ ...(values.consumer ? { consumer: values.consumer } : {}), limit }));
    if (values.json) {
      console.log(JSON.stringify(letters, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2));
      return 0;
    }
    if (letters.length === 0) {
      console.log("no dead letters");
      return 0;
    }
    printTable(
      ["SEQ", "CONSUMER", "TYPE", "EVENT ID", "DELIVERIES", "AT", "ERROR"],
      letters.map((l) => [
        String(l.seq),
        l.consumer,
        l.type,
        l.eventId,
        String(l.deliveryCount),
        l.deadLetteredAt.toISOString(),
        l.error.length > 80 ? `${l.error.slice(0, 77)}...` : l.error,
      ]),
    );
    return 0;
  },
};

/** `nexus dlq replay <seq>`: sends a dead letter through its consumer again. */
export const dlqReplayCommand: Command = {
  path: ["dlq", "replay"],
  summary: "Replay a dead-lettered event through its consumer",
  usage: "nexus dlq replay <seq>",
  async run(args) {
    const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
    const seq = Number(positionals[0]);
    if (positionals.length !== 1 || !Number.isInteger(seq) || seq < 1)
      throw new UsageError("give one DLQ sequence number (see `nexus dlq list`)");
    const r = await withBus((bus) => bus.deadLetters.replay(seq));
    console.log(`replayed #${r.seq} (${r.eventId}) to ${r.consumer} on ${r.subject}; replay ${r.replayCount}`);
    return 0;
  },
};
