import { pathToFileURL } from "node:url";
import { createPgDatabase } from "../db/pg-database.js";
import type { Database } from "../db/ports.js";
import { runSaga, type SagaDefinition } from "./saga.js";

/**
 * Test fixture (saga.int.test.ts): a four-step saga whose steps record their effects in
 * `saga_fixture.effects`, idempotently. Run as a script it drives one saga and announces each
 * step on stdout before doing it, so the test can SIGKILL it in the middle of any step:
 *
 *   node dist/services/kernel/sagas/saga-fixture.js <database-url> <saga-id> <failing-step|->
 */

export const FIXTURE_STEPS = ["reserve", "charge", "ship", "notify"] as const;

export async function prepareFixture(db: Database): Promise<void> {
  await db.exec(
    "CREATE SCHEMA IF NOT EXISTS saga_fixture; CREATE TABLE IF NOT EXISTS saga_fixture.effects (saga_id text, step text, PRIMARY KEY (saga_id, step))",
  );
}

/** The fixture saga; `failing` names a step that always fails; `announce` runs before each step and compensation. */
export function fixtureSaga(
  db: Database,
  failing: string | undefined,
  announce: (what: string) => Promise<void> = async () => {},
): SagaDefinition<{ order: string }> {
  return {
    name: "fixture",
    maxAttempts: 2,
    retryDelayMs: 10,
    timeoutMs: 60_000,
    steps: FIXTURE_STEPS.map((name) => ({
      name,
      pointOfNoReturn: false,
      async run(ctx) {
        await announce(`step ${name}`);
        if (name === failing) throw new Error(`${name} is refused`);
        await db.query("INSERT INTO saga_fixture.effects VALUES ($1, $2) ON CONFLICT DO NOTHING", [ctx.sagaId, name]);
      },
      async compensate(ctx) {
        await announce(`compensate ${name}`);
        await db.query("DELETE FROM saga_fixture.effects WHERE saga_id = $1 AND step = $2", [ctx.sagaId, name]);
      },
    })),
  };
}

async function main(): Promise<void> {
  const [url, sagaId, failing] = process.argv.slice(2);
  if (!url || !sagaId) throw new Error("usage: saga-fixture <database-url> <saga-id> <failing-step|->");
  const db = await createPgDatabase({ url, poolSize: 2 });
  const announce = async (what: string) => {
    process.stdout.write(`${what}\n`);
    await new Promise((r) => setTimeout(r, 400)); // the window in which the test kills us
  };
  const state = await runSaga(db, fixtureSaga(db, failing === "-" ? undefined : failing, announce), sagaId);
  process.stdout.write(`done ${state.status}\n`);
  await db.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
