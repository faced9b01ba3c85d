import { parseArgs } from "node:util";
import { loadConfig } from "../../kernel/config.js";
import type { Database } from "../../kernel/db/ports.js";
import type { Command } from "../command.js";
import { UsageError } from "../command.js";
import { printTable } from "../output.js";

/** Runs `fn` on the configured database (DATABASE_URL, else the embedded one), migrated, then closes it. */
export async function withDatabase<T>(fn: (db: Database) => Promise<T>): Promise<T> {
  // Loaded on use: `nexus help` and client commands start without the whole mesh.
  const { openDatabase } = await import("../../runtime/start-nexus.js");
  const { migratePlatform } = await import("../../kernel/events/platform-migrations.js");
  const db = await openDatabase(loadConfig());
  try {
    await migratePlatform(db);
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function named(name: string | undefined) {
  const { PROJECTIONS, projectionNamed, unrebuildableNamed } = await import("../../runtime/projections.js");
  const fixed = name === undefined ? undefined : unrebuildableNamed(name);
  if (fixed) throw new UsageError(`${fixed.name} is not rebuilt from the event log: ${fixed.why}`);
  const p = name === undefined ? undefined : projectionNamed(name);
  if (!p) throw new UsageError(`give a projection name: ${PROJECTIONS.map((x) => x.name).join(", ")} (see \`nexus projections list\`)`);
  return p;
}

export const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString() : x), 2);

/** `nexus projections list`: the projections that can be rebuilt. */
export const projectionsListCommand: Command = {
  path: ["projections", "list"],
  summary: "List the read models (projections) that can be rebuilt from the event log",
  usage: "nexus projections list [--json]",
  async run(args) {
    const { values } = parseArgs({ args, options: { json: { type: "boolean" } }, strict: true });
    const { PROJECTIONS, UNREBUILDABLE_PROJECTIONS } = await import("../../runtime/projections.js");
    if (values.json) {
      console.log(
        json([
          ...PROJECTIONS.map((p) => ({
            name: p.name,
            table: p.table,
            streams: `${p.streamPrefix}*`,
            description: p.description,
            rebuildable: true,
          })),
          ...UNREBUILDABLE_PROJECTIONS.map((p) => ({ name: p.name, table: p.table, fedBy: p.fedBy, rebuildable: false, why: p.why })),
        ]),
      );
      return 0;
    }
    printTable(
      ["NAME", "TABLE", "FED BY", "REBUILD", "DESCRIPTION"],
      [
        ...PROJECTIONS.map((p) => [p.name, p.table, `streams ${p.streamPrefix}*`, "yes", p.description]),
        ...UNREBUILDABLE_PROJECTIONS.map((p) => [p.name, p.table, p.fedBy, "no", p.why]),
      ],
    );
    return 0;
  },
};

/** `nexus projections status <name>`: health, rows behind and lag in seconds. */
export const projectionsStatusCommand: Command = {
  path: ["projections", "status"],
  summary: "Show a projection's health: state, rows behind their stream, lag in seconds, last rebuild",
  usage: "nexus projections status <name> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { json: { type: "boolean" } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one projection name");
    const { unrebuildableNamed } = await import("../../runtime/projections.js");
    const fed = unrebuildableNamed(positionals[0]!);
    if (fed) return consumerFedStatus(fed, values.json === true);
    const p = await named(positionals[0]);
    const { projectionStatus } = await import("../../kernel/projections/index.js");
    const s = await withDatabase((db) => projectionStatus(db, p));
    if (values.json) {
      console.log(json(s));
      return 0;
    }
    const last = s.lastRebuild;
    printTable(
      ["PROJECTION", "STATE", "ROWS", "BEHIND", "LAG (S)", "LAST REBUILD"],
      [
        [
          s.projection,
          s.state,
          String(s.rows),
          String(s.behind),
          s.lagSeconds === undefined ? "unknown (over 100 ms to measure)" : s.lagSeconds.toFixed(3),
          last
            ? `${last.startedAt.toISOString()} ${last.finishedAt ? `${last.events} events, ${last.changed} rows changed` : "running"}${last.error ? ` — failed: ${last.error}` : ""}`
            : "never",
        ],
      ],
    );
    return s.state === "failed" ? 1 : 0;
  },
};

/**
 * `nexus projections status` of a read model fed by a durable consumer: its consumer's lag
 * measured on the bus (NATS_URL's, else the embedded one) — events not handled yet and the
 * age in seconds of the oldest.
 */
async function consumerFedStatus(
  fed: { name: string; table: string; consumer: string; subject: string },
  asJson: boolean,
): Promise<number> {
  const { createBus } = await import("../../runtime/create-bus.js");
  const { createLogger } = await import("../../kernel/logger.js");
  const { lagSecondsOf } = await import("../../kernel/events/consumer-lag.js");
  const config = loadConfig();
  const logger = createLogger({ level: "warn", pretty: config.logPretty, name: "nexus-projections" });
  const lag = await withDatabase(async (db) => {
    const bus = await createBus({ config, db, logger, relay: false });
    try {
      return await bus.consumerLag(fed.consumer, fed.subject);
    } finally {
      await bus.close();
    }
  });
  const status = {
    projection: fed.name,
    table: fed.table,
    consumer: fed.consumer,
    state: lag === undefined ? "not started" : "consumer-fed",
    unhandled: lag?.unhandled,
    lagSeconds: lag === undefined ? undefined : lagSecondsOf(lag.oldestUnhandledAt),
    oldestUnhandledAt: lag?.oldestUnhandledAt,
  };
  if (asJson) {
    console.log(json(status));
    return 0;
  }
  printTable(
    ["PROJECTION", "CONSUMER", "STATE", "UNHANDLED", "LAG (S)"],
    [
      [
        status.projection,
        status.consumer,
        status.state,
        status.unhandled === undefined ? "-" : String(status.unhandled),
        status.lagSeconds === undefined ? "-" : status.lagSeconds.toFixed(3),
      ],
    ],
  );
  return 0;
}

/** `nexus projections rebuild <name>`: rebuilds into a shadow table and swaps it in. */
export const projectionsRebuildCommand: Command = {
  path: ["projections", "rebuild"],
  summary: "Rebuild a projection from the event log into a shadow table and swap it in atomically",
  usage: "nexus projections rebuild <name> [--json]",
  async run(args) {
    const { values, positionals } = parseArgs({ args, options: { json: { type: "boolean" } }, allowPositionals: true, strict: true });
    if (positionals.length !== 1) throw new UsageError("give one projection name");
    const p = await named(positionals[0]);
    const { rebuildProjection } = await import("../../kernel/projections/index.js");
    const r = await withDatabase((db) => rebuildProjection(db, p));
    if (values.json) {
      console.log(json(r));
      return 0;
    }
    console.log(
      `rebuilt ${r.projection}: ${r.streams} streams, ${r.events} events in ${(r.durationMs / 1000).toFixed(2)} s ` +
        `(${Math.round(r.eventsPerSecond)} events/s); ${r.inserted} rows inserted, ${r.updated} updated, ${r.deleted} deleted; ` +
        `${r.caughtUp} streams caught up during the swap`,
    );
    return 0;
  },
};

/** The `nexus projections` commands. */
export const projectionsCommands: readonly Command[] = [projectionsListCommand, projectionsStatusCommand, projectionsRebuildCommand];
