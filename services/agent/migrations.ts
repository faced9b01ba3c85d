import type { Migration } from "../kernel/db/migrate.js";
import type { SchemaMigrations } from "../kernel/service/index.js";

/** Schema of the agent service: sessions and their messages. */
export const AGENT_SCHEMA = "agent";

/**
 * Sessions and messages, always keyed by tenant first. A message belongs to one run
 * (request id): a completed run stores its user and assistant messages, a failed or
 * cancelled one only the user's. Messages are ordered by `seq` (insertion order).
 */
export const AGENT_MIGRATIONS: readonly Migration[] = [
  {
    id: "0001_sessions_and_messages",
    sql: `
CREATE TABLE agent.sessions (
  tenant_id text NOT NULL,
  session_id text NOT NULL,
  corpus_id text NOT NULL,
  title text NOT NULL,
  message_count int NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, session_id)
);
CREATE INDEX sessions_recent ON agent.sessions (tenant_id, updated_at DESC, session_id DESC);

CREATE TABLE agent.messages (
  tenant_id text NOT NULL,
  session_id text NOT NULL,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  message_id text NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant')),
  text text NOT NULL,
  citations jsonb NOT NULL DEFAULT '[]'::jsonb,
  request_id text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (tenant_id, message_id),
  FOREIGN KEY (tenant_id, session_id) REFERENCES agent.sessions (tenant_id, session_id) ON DELETE CASCADE
);
CREATE INDEX messages_by_session ON agent.messages (tenant_id, session_id, seq);
`,
  },
  {
    // Who started each session (issue 17): the API key (or `user:<id>` for an access token) and
    // the user, so a legal hold on a user or a key covers their sessions (DeleteSession,
    // retention) and a data-subject request finds them. Empty for sessions from before.
    id: "0002_gov_session_owner",
    sql: `
ALTER TABLE agent.sessions ADD COLUMN created_by_key text NOT NULL DEFAULT '';
ALTER TABLE agent.sessions ADD COLUMN created_by_user text NOT NULL DEFAULT '';
CREATE INDEX sessions_by_key ON agent.sessions (tenant_id, created_by_key) WHERE created_by_key <> '';
CREATE INDEX sessions_by_user ON agent.sessions (tenant_id, created_by_user) WHERE created_by_user <> '';
`,
  },
];

/** The agent schema and its migrations (applied whenever the service runs). */
export const agentMigrations: SchemaMigrations = { schema: AGENT_SCHEMA, migrations: AGENT_MIGRATIONS };
