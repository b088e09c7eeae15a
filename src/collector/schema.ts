// The collector's PostgreSQL schema, applied idempotently at every start (and printed by
// `penstock-collector schema` for a DBA who prefers to apply it by hand). The SIEM exporter reads
// `events`; docs/collector.md documents every column.
import type pg from 'pg';

export const SCHEMA_SQL = `
-- Verified journal events, one row per appliance and seq, body = the canonical JSON the appliance hashed.
CREATE TABLE IF NOT EXISTS events (
  id         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  appliance  text        NOT NULL,
  seq        bigint      NOT NULL,
  time       timestamptz NOT NULL,
  code       text        NOT NULL,
  event      text        NOT NULL,
  principal  text,
  target     text,
  session    text,
  body       text        NOT NULL,
  PRIMARY KEY (appliance, seq)
);
-- "Everything principal P did on target T", newest first or in a window.
CREATE INDEX IF NOT EXISTS events_principal_target_time ON events (principal, target, time);
-- Everything in a time window, across appliances.
CREATE INDEX IF NOT EXISTS events_time ON events (time);

-- Signed checkpoints that verified (origin = appliance, signature by its pinned key).
CREATE TABLE IF NOT EXISTS checkpoints (
  appliance   text        NOT NULL,
  size        bigint      NOT NULL,
  root_hash   bytea       NOT NULL,
  note        text        NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (appliance, size)
);

-- The verifier's position per appliance, written in the same transaction as the events it covers.
CREATE TABLE IF NOT EXISTS appliances (
  appliance       text        PRIMARY KEY,
  next_seq        bigint      NOT NULL DEFAULT 0,
  frontier        bytea[]     NOT NULL DEFAULT '{}',
  checkpoint_size bigint      NOT NULL DEFAULT 0,
  root_hash       bytea,
  stream_seq      bigint      NOT NULL DEFAULT 0,
  state           text        NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped')),
  stop_reason     text,
  stop_detail     jsonb,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- What made an appliance stop (and who resumed it): for people and for alerting.
CREATE TABLE IF NOT EXISTS collector_alerts (
  id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  appliance  text        NOT NULL,
  code       text        NOT NULL,
  detail     jsonb       NOT NULL,
  collector  text        NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS collector_alerts_appliance ON collector_alerts (appliance, created_at);
`;

/** One advisory lock namespace for "this collector works on appliance X" (key 2: hashtext(appliance)). */
export const APPLIANCE_LOCK_CLASS = 0x50_53_43_01;
/** One for "a collector is alive" (key 2: a random number per collector): counting them shares the work. */
export const PRESENCE_LOCK_CLASS = 0x50_53_43_02;
/** One for "this collector runs SIEM export X" (key 2: hashtext(export id)): one exporter per cursor. */
export const SIEM_LOCK_CLASS = 0x50_53_43_03;
/** Serialises schema migrations between collectors starting at once. */
const MIGRATE_LOCK = 0x50_53_43_00;

export async function migrate(client: pg.PoolClient | pg.Client): Promise<void> {
  // CREATE ... IF NOT EXISTS races with itself across sessions (unique violation on pg_type): serialise.
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK]);
  try {
    await client.query(SCHEMA_SQL);
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK]);
  }
}
