import type { Aggregate } from "../../services/kernel/commands/index.js";
import type { Database, Queryable } from "../../services/kernel/db/ports.js";
import { domainError } from "../../services/kernel/errors.js";

/**
 * A tiny aggregate for the kernel command helper's tests: a named counter whose state row
 * (`test_commands.counters`) is guarded by version, like every real aggregate's.
 */
export interface Counter {
  id: string;
  value: number;
}

/** What a counter can be asked to do. */
export type CounterCommand =
  | { type: "Open"; id: string }
  | { type: "Add"; amount: number }
  /** Adds nothing: decide answers no events. */
  | { type: "Touch" }
  /** Refused by decide (a domain error). */
  | { type: "Break" };

/** What happened to a counter. */
export type CounterEvent = { type: "Opened"; id: string } | { type: "Added"; id: string; amount: number };

/** Creates the counters table (call once per database). */
export async function migrateCounters(db: Database): Promise<void> {
  await db.exec(`
    CREATE SCHEMA IF NOT EXISTS test_commands;
    CREATE TABLE IF NOT EXISTS test_commands.counters (
      id text PRIMARY KEY,
      value integer NOT NULL,
      version integer NOT NULL CHECK (version >= 1)
    );`);
}

/** The stored row of a counter (undefined: none). */
export async function counterRow(db: Queryable, id: string): Promise<{ value: number; version: number } | undefined> {
  const { rows } = await db.query<{ value: number; version: number }>("SELECT value, version FROM test_commands.counters WHERE id = $1", [
    id,
  ]);
  return rows[0];
}

/**
 * The counter as the command helper drives it. `afterLoad` runs once the state is read;
 * `onSave` after the row is written and before the events are appended (tests use them to
 * line writers up or fail there).
 */
export function counterAggregate(
  hooks: { afterLoad?: () => Promise<void>; onSave?: () => Promise<void> } = {},
): Aggregate<Counter, CounterEvent, CounterCommand, string> {
  return {
    streamId: (id) => `counter-${id}`,
    async load(tx, id) {
      const { rows } = await tx.query<{ value: number; version: number }>(
        "SELECT value, version FROM test_commands.counters WHERE id = $1 FOR UPDATE",
        [id],
      );
      const row = rows[0];
      await hooks.afterLoad?.();
      return row ? { state: { id, value: row.value }, version: row.version } : { state: undefined, version: 0 };
    },
    decide(command, state) {
      switch (command.type) {
        case "Open":
          if (state !== undefined) throw domainError("ALREADY_EXISTS", "the counter exists");
          return [{ type: "Opened", id: command.id }];
        case "Add":
          if (state === undefined) throw domainError("NOT_FOUND", "no such counter");
          return [{ type: "Added", id: state.id, amount: command.amount }];
        case "Touch":
          return [];
        case "Break":
          throw domainError("FAILED_PRECONDITION", "this counter refuses to break");
      }
    },
    evolve(state, event) {
      switch (event.type) {
        case "Opened":
          return { id: event.id, value: 0 };
        case "Added":
          return { id: event.id, value: (state?.value ?? 0) + event.amount };
      }
    },
    async save(tx, id, state, expectedVersion, version) {
      await tx.query(
        `INSERT INTO test_commands.counters (id, value, version) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version
         WHERE test_commands.counters.version = $4`,
        [id, state.value, version, expectedVersion],
      );
      await hooks.onSave?.();
    },
    toEvent(event, state) {
      return event.type === "Opened"
        ? { type: "test.v1.CounterOpened", topic: "counters.opened", payload: { value: state.value } }
        : { type: "test.v1.CounterAdded", topic: "counters.added", payload: { amount: event.amount, value: state.value } };
    },
  };
}
