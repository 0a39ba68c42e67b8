/**
 * A database as an older witness left it: request_log and the migrations up
 * to `version`, holding the rows of a day filled by bench/fill.ts. For the
 * tests that read such a file as it is, then migrate it.
 */
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { fillDatabase } from '../../bench/fill.ts'
import { MIGRATIONS, REQUEST_LOG_DDL } from '../../src/telemetry/schema.ts'
import { tempDir } from './temp.ts'

/** Creates the file (in a temp dir) at schema `version` with `rows` rows over the day ending at `endMs`; returns its path and an open connection to add to it (the caller closes it). */
export function oldDatabase(version: number, rows: number, endMs: number): { path: string; db: Database } {
  const source = join(tempDir(), 'source.db')
  fillDatabase(source, { rows, days: 1, endMs })
  const path = join(tempDir(), 'witness.db')
  const db = new Database(path, { create: true })
  db.exec('PRAGMA auto_vacuum = INCREMENTAL')
  db.exec('PRAGMA journal_mode = WAL')
  db.exec(REQUEST_LOG_DDL)
  for (const migration of MIGRATIONS.slice(0, version)) db.exec(migration)
  db.exec(`PRAGMA user_version = ${version}`)
  db.exec(`ATTACH '${source}' AS source`)
  db.exec('INSERT INTO request_log SELECT * FROM source.request_log; INSERT INTO request_log_meta SELECT * FROM source.request_log_meta')
  db.exec('DETACH source')
  return { path, db }
}
