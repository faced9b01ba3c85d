/**
 * The one polling helper of the test suites: wait for a condition the system reaches on its own
 * (a consumer caught up, a document settled, a lease moved) without fixed sleeps.
 */

/** The value `probe` returns while the condition does not hold yet. */
type NotYet = undefined | false;

/**
 * Polls `probe` every `intervalMs` until it returns a value other than `undefined`/`false` and
 * returns that value; a probe that throws counts as "not yet". After `timeoutMs` it fails naming
 * `what` and the last value or error seen, so a timeout says what was missing.
 */
export async function eventually<T>(
  what: string,
  probe: () => T | NotYet | Promise<T | NotYet>,
  timeoutMs = 30_000,
  intervalMs = 50,
): Promise<Exclude<T, NotYet>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v as Exclude<T, NotYet>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${seen}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
