import pg from "pg";

/** What the target region's database says about itself. */
export interface TargetState {
  /** Still a streaming replica (pg_is_in_recovery()). */
  inRecovery: boolean;
  /** Seconds since the last replayed transaction (0 when not a replica or nothing to replay). */
  lagSeconds: number;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, statement_timeout: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Measures the target: whether it is in recovery and how far its replay lags. A replica that
 * has replayed everything it received lags 0, however long the primary has been idle; one with
 * WAL still to replay lags the time since its last replayed commit (how stale its data is), or,
 * when it has replayed no commit since it started, the time since it started (its data is at
 * least that old; counting it as 0 promoted a stale replica). WAL
 * the primary has not sent yet is not visible from the replica: a replica cut off from its
 * primary looks caught up, so `Planned` failovers should run while replication is connected.
 */
export function measureTarget(url: string): Promise<TargetState> {
  return withClient(url, async (c) => {
    const r = await c.query<{ in_recovery: boolean; lag: string | null }>(
      `SELECT pg_is_in_recovery() AS in_recovery,
              CASE WHEN NOT pg_is_in_recovery() THEN 0
                   WHEN pg_last_wal_receive_lsn() IS NOT NULL
                        AND pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                   ELSE EXTRACT(EPOCH FROM now() - COALESCE(pg_last_xact_replay_timestamp(), pg_postmaster_start_time()))
              END AS lag`,
    );
    const row = r.rows[0];
    return { inRecovery: Boolean(row?.in_recovery), lagSeconds: Number(row?.lag ?? 0) };
  });
}

/** Promotes the target when it is still a replica (pg_promote waits up to 60 s); a primary is left alone. */
export function promoteTarget(url: string): Promise<{ promoted: boolean }> {
  return withClient(url, async (c) => {
    const r = await c.query<{ in_recovery: boolean }>("SELECT pg_is_in_recovery() AS in_recovery");
    if (!r.rows[0]?.in_recovery) return { promoted: false };
    const p = await c.query<{ ok: boolean }>("SELECT pg_promote(true, 60) AS ok");
    if (!p.rows[0]?.ok) throw new Error("pg_promote did not finish within 60 s");
    return { promoted: true };
  });
}
