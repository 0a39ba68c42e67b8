import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { readPruned } from '../src/proof/pruned.ts'
import { prunedArchiveMonths, recordedArchiveMonths } from '../src/retention/archive-months.ts'
import { storyRows } from '../src/telemetry/queries.ts'
import { MIGRATIONS, REQUEST_LOG_DDL, SCHEMA_VERSION } from '../src/telemetry/schema.ts'
import { openStore } from '../src/telemetry/store.ts'
import { REQUEST_LOG_COLUMNS } from './support/request-log-columns.ts'
import { tempDir } from './support/temp.ts'

function open(path: string) {
  return openStore(path, { sync: 'full', busyTimeoutMs: 1000 })
}

describe('schema', () => {
  test('request_log has exactly the eleven specified columns and an AUTOINCREMENT key', () => {
    const path = join(tempDir(), 'w.db')
    open(path).close()
    const db = new Database(path, { readonly: true })
    expect(db.query('PRAGMA table_info(request_log)').all()).toEqual(REQUEST_LOG_COLUMNS)
    const { sql } = db.query("SELECT sql FROM sqlite_master WHERE name = 'request_log'").get() as { sql: string }
    expect(sql).toBe(REQUEST_LOG_DDL)
    expect(sql).toContain('id INTEGER PRIMARY KEY AUTOINCREMENT')
    expect(db.query("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'").get()).toBeTruthy()
    db.close()
  })

  test('a new database is WAL with incremental auto-vacuum, and has the time, agent and provider indexes', () => {
    const path = join(tempDir(), 'w.db')
    open(path).close()
    const db = new Database(path, { readonly: true })
    expect(db.query('PRAGMA journal_mode').get()).toEqual({ journal_mode: 'wal' })
    expect(db.query('PRAGMA auto_vacuum').get()).toEqual({ auto_vacuum: 2 })
    const indexes = (db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'request_log'").all() as { name: string }[]).map((r) => r.name)
    expect(indexes).toEqual(expect.arrayContaining(['request_log_timestamp', 'request_log_agent_time', 'request_log_provider_time', 'request_log_agent_provider_time']))
    expect(db.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION })
    db.close()
  })

  test('opening twice is safe and keeps the rows', async () => {
    const path = join(tempDir(), 'w.db')
    const store = open(path)
    await store.insert({ timestamp: '2026-11-25T00:00:00.000Z', agentName: 'a', provider: 'p', model: 'm', endpoint: 'e', status: 'error', errorMessage: 'x' }, null)
    store.close()
    open(path).close()
    const db = new Database(path, { readonly: true })
    expect(db.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 1 })
    db.close()
  })

  test('a database made by a build whose migrations lacked columns added to them later gets those columns', () => {
    const path = join(tempDir(), 'between.db')
    open(path).close()
    const db = new Database(path)
    db.exec('ALTER TABLE archive_months DROP COLUMN pruned_at; ALTER TABLE chain_pruned DROP COLUMN first_log_id; ALTER TABLE stats_slice DROP COLUMN max_latency_ms')
    db.exec("INSERT INTO archive_months (month, recorded_at) VALUES ('2026-10', 't')")
    db.close()
    // Read-only (the command line's readers), it is read as it is.
    const readOnly = new Database(path, { readonly: true })
    expect([readPruned(readOnly), recordedArchiveMonths(readOnly), prunedArchiveMonths(readOnly)]).toEqual([[], ['2026-10'], []])
    readOnly.close()
    open(path).close()
    const after = new Database(path, { readonly: true })
    const columns = (table: string) => (after.query(`PRAGMA table_info(${table})`).all() as { name: string }[]).map((c) => c.name)
    expect([columns('archive_months'), columns('chain_pruned'), columns('stats_slice')]).toEqual([
      expect.arrayContaining(['pruned_at']),
      expect.arrayContaining(['first_log_id']),
      expect.arrayContaining(['max_latency_ms']),
    ])
    after.close()
  })

  test('a database holding only request_log (schema version 0) is migrated without touching the table', () => {
    const path = join(tempDir(), 'old.db')
    const db = new Database(path, { create: true })
    db.exec(REQUEST_LOG_DDL)
    db.exec("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES ('t', 'a', 'p', 'm', 'e', 'success')")
    db.close()
    open(path).close()
    const after = new Database(path, { readonly: true })
    expect(after.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION })
    expect(after.query('PRAGMA table_info(request_log)').all()).toEqual(REQUEST_LOG_COLUMNS)
    expect(after.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 1 })
    expect(after.query("SELECT name FROM sqlite_master WHERE name = 'request_log_meta'").get()).toBeTruthy()
    after.close()
  })

  test('a version 4 database is upgraded in place: first_token_ms is added, its rows and meta kept, and new streams record it', async () => {
    const path = join(tempDir(), 'v4.db')
    const old = new Database(path, { create: true })
    old.exec('PRAGMA auto_vacuum = INCREMENTAL')
    old.exec(REQUEST_LOG_DDL)
    for (const migration of MIGRATIONS.slice(0, 4)) old.exec(migration)
    old.exec('PRAGMA user_version = 4')
    old.exec("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, latency_ms, status) VALUES ('2026-11-25T00:00:00.000Z', 'a', 'p', 'm', 'e', 900, 'success')")
    old.exec("INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream, first_byte_ms) VALUES (1, 'r1', 'default', 'infer', 1, 0, 1, 1, 40)")
    // An archive from before the upgrade is read as it is: its story says first_token_ms is not known.
    expect(storyRows(old, 'r1')).toMatchObject([{ id: 1, first_byte_ms: 40, first_token_ms: null }])
    const columnsBefore = old.query('PRAGMA table_info(request_log)').all()
    old.close()

    const store = open(path)
    const id = await store.begin({ timestamp: '2026-11-25T00:00:01.000Z', agentName: 'a', provider: 'p', model: 'm', endpoint: 'e' }, { requestId: 'r2', chain: 'default', api: 'chat.completions', seq: 1, step: 0, try: 1, stream: true })
    await store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 700, errorMessage: null, firstByteMs: 12, firstTokenMs: 340 })
    store.close()
    const after = new Database(path, { readonly: true })
    expect(after.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION })
    expect(after.query('PRAGMA table_info(request_log)').all()).toEqual(columnsBefore)
    expect(after.query("SELECT type, \"notnull\" FROM pragma_table_info('request_log_meta') WHERE name = 'first_token_ms'").get()).toEqual({ type: 'INTEGER', notnull: 0 })
    expect(after.query('SELECT log_id, first_byte_ms, first_token_ms FROM request_log_meta ORDER BY log_id').all()).toEqual([
      { log_id: 1, first_byte_ms: 40, first_token_ms: null },
      { log_id: id, first_byte_ms: 12, first_token_ms: 340 },
    ])
    expect(after.query('SELECT id, latency_ms, status FROM request_log ORDER BY id').all()).toEqual([
      { id: 1, latency_ms: 900, status: 'success' },
      { id, latency_ms: 700, status: 'success' },
    ])
    after.close()
  })

  test('a status outside the known set is refused in code', async () => {
    const store = open(join(tempDir(), 'w.db'))
    await expect(
      store.insert({ timestamp: 't', agentName: 'a', provider: 'p', model: 'm', endpoint: 'e', status: 'bogus' as 'error', errorMessage: null }, null),
    ).rejects.toThrow(/invalid status/)
    store.close()
  })
})
