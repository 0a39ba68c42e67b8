/**
 * The database schema: `request_log` exactly as the operators specified it
 * (never altered), and witness's own side tables and indexes, versioned
 * with `PRAGMA user_version` and applied by numbered migrations.
 */
import type { Database } from 'bun:sqlite'
import { ForeignDatabaseError, SchemaTooNewError } from '../errors.ts'

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

/** The 11 request_log columns, in table order. */
export const LOG_COLUMNS = [
  'id', 'timestamp', 'agent_name', 'provider', 'model', 'endpoint',
  'tokens_in', 'tokens_out', 'latency_ms', 'status', 'error_message',
] as const

/** Every status a row may carry; checked in code before any write. */
export const STATUSES = ['pending', 'success', 'error', 'timeout', 'fallback', 'rollback'] as const
export type Status = (typeof STATUSES)[number]

/** Statuses of rows that record a real upstream call (did-call's `called`). */
export const CALL_STATUSES = ['pending', 'success', 'error', 'timeout'] as const
/** Statuses of finished calls (the stats' attempts). */
export const ATTEMPT_STATUSES = ['success', 'error', 'timeout'] as const
/** The rare statuses the partial indexes of migrations 4, 6 and 11 hold (their WHERE, which a query must repeat to use them). */
export const RARE_STATUSES = ['error', 'timeout', 'fallback', 'rollback'] as const

/** `<column> IN ('a', 'b')` for a fixed list of statuses (never a value from outside). */
export function statusIn(column: string, statuses: readonly Status[]): string {
  return `${column} IN (${statuses.map((s) => `'${s}'`).join(', ')})`
}

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
  // 2: the deadman switch: the facts of each rollback row, and agents' last heartbeats.
  `CREATE TABLE IF NOT EXISTS deadman_rollback (
     log_id INTEGER PRIMARY KEY,          -- request_log.id of the rollback row
     agent TEXT NOT NULL,                 -- the agent (or the router's own name) rolled back
     old_config_hash TEXT,                -- the config running before (null: not known)
     new_config_hash TEXT,                -- the config restored (null: not known)
     reason TEXT NOT NULL,
     command TEXT,                        -- restart_command, rollback_command, ... (null: none run)
     exit_status INTEGER,                 -- the command's exit status (null: not run, killed)
     timed_out INTEGER NOT NULL DEFAULT 0,
     output TEXT,                         -- the first lines of the command's output
     recorded_by TEXT NOT NULL            -- router, endpoint (POST /deadman/rollback), watchdog (direct write)
   ) STRICT;
   CREATE TABLE IF NOT EXISTS deadman_agent (
     agent TEXT PRIMARY KEY,
     last_beat_at TEXT,                   -- ISO-8601 UTC of the last heartbeat (null: never)
     config_hash TEXT,                    -- the hash it last reported
     config_hash_since TEXT,              -- when it first reported that hash
     previous_config_hash TEXT,
     state TEXT NOT NULL,                 -- ok, late, rolled_back
     silence_handled INTEGER NOT NULL DEFAULT 0, -- this silence's command already ran
     last_rollback_log_id INTEGER,        -- request_log.id of its last rollback row
     updated_at TEXT NOT NULL
   ) STRICT;`,
  // 3: proof: the hash chain over finished rows, and signed checkpoints of its head.
  `CREATE TABLE IF NOT EXISTS log_chain (
     seq INTEGER PRIMARY KEY,             -- position in the chain, from 1, no gaps
     log_id INTEGER NOT NULL UNIQUE,      -- request_log.id
     prev_hash TEXT NOT NULL,             -- the previous entry's hash (64 zeros for the first)
     hash TEXT NOT NULL,                  -- sha256(prev_hash || record), hex
     record TEXT NOT NULL,                -- the canonical encoding that was hashed (src/proof/record.ts)
     chained_at TEXT NOT NULL
   ) STRICT;
   CREATE TABLE IF NOT EXISTS checkpoints (
     id INTEGER PRIMARY KEY,
     machine TEXT NOT NULL,
     seq INTEGER NOT NULL,                -- the chain entry it covers (the head when signed)
     head_hash TEXT NOT NULL,
     time TEXT NOT NULL,
     key_id TEXT NOT NULL,                -- which public key signed it
     signature TEXT NOT NULL              -- Ed25519 over the canonical payload, base64url
   ) STRICT;
   CREATE INDEX IF NOT EXISTS checkpoints_seq ON checkpoints(seq);
   -- Rows finished before this migration are not chained; remember where the chain begins.
   INSERT OR IGNORE INTO witness_state (key, value, updated_at)
     SELECT 'chain.first_log_id', COALESCE(MAX(id), 0) + 1, strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM request_log;`,
  // 4: the rows of the rare statuses (error, timeout, fallback, rollback), for the read side.
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
  // 5: time to first token of a stream, beside first_byte_ms (the first event, often a role-only
  // chunk or message_start): the first event carrying text, a tool call or reasoning.
  `ALTER TABLE request_log_meta ADD COLUMN first_token_ms INTEGER;`,
  // 6: `/requests?provider=&status=` (which provider's errors?) without an agent: a range read of
  // that provider's rare-status rows, newest first, instead of walking every row of the status
  // (24 ms at 10 million rows before). Partial like the others: success rows never touch it.
  `CREATE INDEX IF NOT EXISTS request_log_provider_status_time ON request_log(provider, status, timestamp)
     WHERE status IN ('error', 'timeout', 'fallback', 'rollback');`,
  // 7: the stats' sealed 10-minute slices, folded once and kept, so a cold /stats or `witness stats`
  // merges stored partials instead of reading every row (src/telemetry/slice-store.ts says why a
  // stored slice is never stale). Rows added from now on are the only ones a reader must check
  // against them, so the check starts at the newest row there is.
  `CREATE TABLE IF NOT EXISTS stats_slice (
     slice_start TEXT PRIMARY KEY,        -- ISO-8601 UTC start of the slice: 2026-11-25T12:10:00.000Z
     as_of_id INTEGER NOT NULL,           -- the highest request_log id when it was folded
     lo_id INTEGER,                       -- the lowest request_log id in the slice (null: no rows)
     max_id INTEGER,                      -- the highest request_log id in the slice
     row_count INTEGER NOT NULL,          -- the request_log rows in the slice
     max_latency_ms REAL NOT NULL,        -- its longest latency: it was final SEAL_AFTER_MS after its end plus this
     combos BLOB NOT NULL,                -- per (agent, chain, provider, model): counts, tokens, costs, requests, latency histogram (slice-codec.ts)
     folded_at TEXT NOT NULL
   ) STRICT;
   INSERT OR IGNORE INTO witness_state (key, value, updated_at)
     SELECT 'stats.checked_id', COALESCE(MAX(id), 0), strftime('%Y-%m-%dT%H:%M:%fZ', 'now') FROM request_log;`,
  // 8: per stored slice, its rows per (agent, provider, model), all statuses: did-call adds these up
  // for the whole slices of its window instead of counting index entries (telemetry/did-call-stored.ts).
  // Written in the transaction that stores the slice, and only with it (slice-store.ts). The slices
  // stored before now have none, so they are deleted: the stats fill stores them again, with counts.
  `CREATE TABLE IF NOT EXISTS slice_row_counts (
     agent_name TEXT NOT NULL,
     provider TEXT NOT NULL,
     slice_start TEXT NOT NULL,           -- the stats_slice row it belongs to
     model TEXT NOT NULL,
     n INTEGER NOT NULL,                  -- request_log rows of the slice with these three (any status)
     PRIMARY KEY (agent_name, provider, slice_start, model)
   ) WITHOUT ROWID, STRICT;
   -- Deleting a slice's counts (a slice stored again, dropped or archived) without scanning them all.
   CREATE INDEX IF NOT EXISTS slice_row_counts_slice ON slice_row_counts(slice_start);
   DELETE FROM stats_slice;`,
  // 9: an id per rollback a watchdog records. It may try twice (through POST /deadman/rollback and,
  // when that does not answer in time, straight into the file), or a run killed before it knew
  // leaves it to the next: with the id, a rollback is one row however often it is reported.
  `ALTER TABLE deadman_rollback ADD COLUMN rollback_id TEXT;
   CREATE UNIQUE INDEX IF NOT EXISTS deadman_rollback_id ON deadman_rollback(rollback_id) WHERE rollback_id IS NOT NULL;`,
  // 10: the chain entries deleted with their archive months (retention.archive_keep_days), as runs of
  // consecutive positions linked hash to hash, so verify --archives can tell them from entries removed
  // by hand (src/proof/pruned.ts).
  `CREATE TABLE IF NOT EXISTS chain_pruned (
     from_seq INTEGER PRIMARY KEY,        -- the run's first chain position
     to_seq INTEGER NOT NULL,             -- its last
     prev_hash TEXT NOT NULL,             -- the hash its first entry follows
     hash TEXT NOT NULL,                  -- the hash of its last entry
     month TEXT NOT NULL,                 -- the archive month it was deleted with
     pruned_at TEXT NOT NULL
   ) STRICT;`,
  // 11: did-call with model= ("did the agent really run on the model it was switched to?") counted its
  // rare-status rows by reading each one's row for the model: 9 ms over a day of 300k rows, 34 ms at
  // 10 million. The model rides at the end of migration 4's partial index now, so those counts stay
  // index-only with or without it. Rebuilt from the rare-status rows (a scan of the table, once).
  `DROP INDEX IF EXISTS request_log_agent_provider_status_time;
   CREATE INDEX request_log_agent_provider_status_time ON request_log(agent_name, provider, status, timestamp, model)
     WHERE status IN ('error', 'timeout', 'fallback', 'rollback');`,
  // 12: the archive months the archive job wrote rows to and has not deleted, so a read can tell a
  // month file gone missing (deleted by hand, a partial restore) from a month that held no rows:
  // without this, did-call answered "no" for the calls in it (src/retention/archive-months.ts).
  `CREATE TABLE IF NOT EXISTS archive_months (
     month TEXT PRIMARY KEY,              -- YYYY-MM, the UTC month of its rows
     recorded_at TEXT NOT NULL,
     pruned_at TEXT                       -- when retention deleted its file (archive_keep_days)
   ) WITHOUT ROWID, STRICT;`,
  // 13: each run of chain entries deleted with its archive is signed by the machine's key, as the
  // checkpoints are: an unsigned record in the file anyone with write access can edit excused any
  // entries it named, rows deleted by hand included (src/proof/pruned.ts).
  `ALTER TABLE chain_pruned ADD COLUMN machine TEXT;
   ALTER TABLE chain_pruned ADD COLUMN first_log_id INTEGER;  -- the smallest row id the run chained (start-up recovery's aside)
   ALTER TABLE chain_pruned ADD COLUMN key_id TEXT;
   ALTER TABLE chain_pruned ADD COLUMN signature TEXT;`,
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
  if (fresh) {
    // Another program's database (a path mistyped, a file reused): not turned to WAL, nor given witness's tables.
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[]).map((t) => t.name)
    if (tables.length) throw new ForeignDatabaseError(db.filename, tables)
    db.exec('PRAGMA auto_vacuum = INCREMENTAL')
  }
  db.exec('PRAGMA journal_mode = WAL')
  db.transaction(() => {
    // Re-check inside the write lock: another process may have won the race.
    if (!db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_log'").get()) {
      db.exec(REQUEST_LOG_DDL)
    }
    const version = (db.query('PRAGMA user_version').get() as { user_version: number }).user_version
    if (version > SCHEMA_VERSION) {
      throw new SchemaTooNewError(db.filename, version, SCHEMA_VERSION)
    }
    for (let i = version; i < SCHEMA_VERSION; i++) db.exec(MIGRATIONS[i]!)
    if (version !== SCHEMA_VERSION) db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
    for (const late of LATE_COLUMNS) {
      const columns = columnsOf(db, late.table)
      if (columns.length && !columns.includes(late.column)) db.exec(late.sql)
    }
  }).immediate()
}

/** Whether `schema` (main, or an attached database) has the table. */
export function hasTable(db: Database, name: string, schema = 'main'): boolean {
  return Boolean(db.query(`SELECT 1 FROM ${schema}.sqlite_master WHERE type = 'table' AND name = ?`).get(name))
}

/** Column names of a table, in order (none when there is no such table); `schema`: main, or an attached database. */
export function columnsOf(db: Database, table: string, schema = 'main'): string[] {
  return (db.query('SELECT name FROM pragma_table_info(?, ?)').all(table, schema) as { name: string }[]).map((c) => c.name)
}

/**
 * Columns a migration gained after it was first committed, so that a database made by a build in
 * between (never released, but on a developer's disk) has the table without them: added where
 * missing, on every open. Append only.
 */
const LATE_COLUMNS: readonly { table: string; column: string; sql: string }[] = [
  // Migration 7: the stored slices are a cache of what the rows say, folded again once dropped.
  {
    table: 'stats_slice',
    column: 'max_latency_ms',
    sql: `DELETE FROM stats_slice; DELETE FROM slice_row_counts; ALTER TABLE stats_slice ADD COLUMN max_latency_ms REAL NOT NULL DEFAULT 0;`,
  },
  { table: 'archive_months', column: 'pruned_at', sql: 'ALTER TABLE archive_months ADD COLUMN pruned_at TEXT;' },
  { table: 'chain_pruned', column: 'first_log_id', sql: 'ALTER TABLE chain_pruned ADD COLUMN first_log_id INTEGER;' },
]
