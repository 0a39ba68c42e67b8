/**
 * The database schema: `request_log` exactly as the operators specified it
 * (never altered), and witness's own side tables and indexes, versioned
 * with `PRAGMA user_version` and applied by numbered migrations.
 */
import type { Database } from 'bun:sqlite'

/** The fixed table, byte for byte as specified. */
export const REQUEST_LOG_DDL = `CREATE TABLE request_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    agent_name TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    latency_ms INTEGER,
    status TEXT NOT NULL,  -- "success", "error", "timeout", "fallback"
    error_message TEXT
)`

/** Every status a row may carry; checked in code before any write. */
export const STATUSES = ['pending', 'success', 'error', 'timeout', 'fallback', 'rollback'] as const
export type Status = (typeof STATUSES)[number]
export const FINAL_STATUSES: readonly Status[] = ['success', 'error', 'timeout', 'fallback', 'rollback']

export function isStatus(value: unknown): value is Status {
  return typeof value === 'string' && (STATUSES as readonly string[]).includes(value)
}

/**
 * Migrations, in order; migration i brings user_version from i to i+1.
 * Append only: a released migration never changes.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: side table for each row, witness state, indexes for time, agent+time, provider+time.
  `CREATE TABLE IF NOT EXISTS request_log_meta (
     log_id INTEGER PRIMARY KEY,          -- request_log.id
     request_id TEXT NOT NULL,            -- ties together every row of one request
     chain TEXT NOT NULL,
     api TEXT NOT NULL,                   -- infer, chat.completions, messages, deadman
     seq INTEGER NOT NULL,                -- position of the row within its request, from 1
     step INTEGER,                        -- chain step, from 0
     try INTEGER,                         -- try within the step, from 1 (null for fallback rows)
     stream INTEGER NOT NULL DEFAULT 0,
     http_status INTEGER,
     response_id TEXT,                    -- the provider's own id for the response
     served_model TEXT,                   -- the model the provider says served the call
     first_byte_ms INTEGER,
     cost_usd REAL                        -- cost the provider reported
   ) STRICT;
   CREATE INDEX IF NOT EXISTS request_log_meta_request ON request_log_meta(request_id);
   CREATE TABLE IF NOT EXISTS witness_state (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     updated_at TEXT NOT NULL
   ) STRICT;
   CREATE INDEX IF NOT EXISTS request_log_timestamp ON request_log(timestamp);
   CREATE INDEX IF NOT EXISTS request_log_agent_time ON request_log(agent_name, timestamp);
   CREATE INDEX IF NOT EXISTS request_log_agent_provider_time ON request_log(agent_name, provider, timestamp);
   CREATE INDEX IF NOT EXISTS request_log_provider_time ON request_log(provider, timestamp);
   CREATE INDEX IF NOT EXISTS request_log_pending ON request_log(id) WHERE status = 'pending';`,
  // 2: the rows of the rare statuses (error, timeout, fallback, rollback), for the read side.
  // Both indexes are partial, so they cost nothing for the success rows that are most of the
  // table: a row enters them only when it is written as (or finished as) one of those statuses.
  // - (status, timestamp): `/requests?status=` newest first; without it a status filter on its own
  //   walks the whole time index when the status is rare or absent.
  // - (agent_name, provider, status, timestamp): did-call counts these per status from the index
  //   alone; the success count is the rest of an index-only count, so no row is read.
  `CREATE INDEX IF NOT EXISTS request_log_status_time ON request_log(status, timestamp)
     WHERE status IN ('error', 'timeout', 'fallback', 'rollback');
   CREATE INDEX IF NOT EXISTS request_log_agent_provider_status_time ON request_log(agent_name, provider, status, timestamp)
     WHERE status IN ('error', 'timeout', 'fallback', 'rollback');`,
]

export const SCHEMA_VERSION = MIGRATIONS.length

/**
 * Creates the schema on a fresh file and migrates an older one. Safe to run
 * any number of times, from any process (the write lock orders them).
 * `auto_vacuum` must be set before the first table exists, so archiving can
 * give space back.
 */
export function ensureSchema(db: Database): void {
  const fresh = !db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_log'").get()
  if (fresh) db.exec('PRAGMA auto_vacuum = INCREMENTAL')
  db.exec('PRAGMA journal_mode = WAL')
  db.transaction(() => {
    // Re-check inside the write lock: another process may have won the race.
    if (!db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_log'").get()) {
      db.exec(REQUEST_LOG_DDL)
    }
    const version = (db.query('PRAGMA user_version').get() as { user_version: number }).user_version
    if (version > SCHEMA_VERSION) {
      throw new Error(`database schema version ${version} is newer than this witness (${SCHEMA_VERSION}); upgrade witness`)
    }
    for (let i = version; i < SCHEMA_VERSION; i++) db.exec(MIGRATIONS[i]!)
    if (version !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
  }).immediate()
}
