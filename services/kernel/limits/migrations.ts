import type { Migration } from "../db/migrate.js";

/**
 * The kernel's request-limit tables, in the `platform` schema (ids prefixed `limits_` so they
 * sit beside the event store's migrations): token buckets shared by replicas, and idempotency
 * records.
 */
export const LIMITS_MIGRATIONS: readonly Migration[] = [
  {
    id: "limits_0001_rate_buckets",
    sql: `
CREATE TABLE platform.rate_buckets (
  name text PRIMARY KEY,
  tokens float8 NOT NULL,
  updated_at timestamptz NOT NULL
);
CREATE INDEX rate_buckets_updated_idx ON platform.rate_buckets (updated_at);

-- Takes one token from every named bucket, or from none. Returns the index (0-based) of the
-- bucket that refused (the one with the longest wait) and how long until it holds a token, or
-- -1 when the call may pass. Rows are locked in name order, so concurrent calls never deadlock.
CREATE FUNCTION platform.take_tokens(names text[], rates float8[], bursts float8[],
                                     OUT refused_by int, OUT retry_after_ms int) AS $$
DECLARE
  n int := array_length(names, 1);
  now_ts timestamptz := clock_timestamp();
  avail float8[] := '{}';
  t float8;
  i int;
  wait int;
  r record;
BEGIN
  -- Buckets are not worth a WAL flush: a crash loses at most a moment of token accounting.
  PERFORM set_config('synchronous_commit', 'off', true);
  refused_by := -1;
  retry_after_ms := 0;
  FOR i IN 1..n LOOP
    INSERT INTO platform.rate_buckets (name, tokens, updated_at) VALUES (names[i], bursts[i], now_ts)
      ON CONFLICT (name) DO NOTHING;
  END LOOP;
  FOR r IN SELECT b.name, b.tokens, b.updated_at FROM platform.rate_buckets b
           WHERE b.name = ANY (names) ORDER BY b.name FOR UPDATE LOOP
    NULL;
  END LOOP;
  FOR i IN 1..n LOOP
    SELECT least(bursts[i], b.tokens + greatest(0, extract(epoch FROM now_ts - b.updated_at)) * rates[i])
      INTO t FROM platform.rate_buckets b WHERE b.name = names[i];
    avail := avail || t;
    IF t < 1 THEN
      wait := ceil((1 - t) / rates[i] * 1000);
      IF wait > retry_after_ms THEN
        retry_after_ms := wait;
        refused_by := i - 1;
      END IF;
    END IF;
  END LOOP;
  FOR i IN 1..n LOOP
    UPDATE platform.rate_buckets
       SET tokens = CASE WHEN refused_by < 0 THEN avail[i] - 1 ELSE avail[i] END, updated_at = now_ts
     WHERE name = names[i];
  END LOOP;
END;
$$ LANGUAGE plpgsql;
`,
  },
  {
    id: "limits_0002_idempotency_keys",
    sql: `
CREATE TABLE platform.idempotency_keys (
  scope text NOT NULL,
  method text NOT NULL,
  key text NOT NULL,
  request_sha256 bytea NOT NULL,
  state text NOT NULL CHECK (state IN ('running', 'done')),
  response bytea,
  locked_until timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, method, key)
);
CREATE INDEX idempotency_keys_expires_idx ON platform.idempotency_keys (expires_at);
`,
  },
  {
    id: "limits_0003_mesh_token",
    sql: `
-- One row: the token Nexus processes of an installation attach to calls among themselves.
CREATE TABLE platform.mesh_token (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  token text NOT NULL
);
`,
  },
];

/** The limits' schema entry for the kernel migrator. */
export const limitsMigrations = { schema: "platform", migrations: LIMITS_MIGRATIONS } as const;
