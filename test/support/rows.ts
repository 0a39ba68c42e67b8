/** Reads rows straight from a SQLite file, as an operator would. */
import { Database } from 'bun:sqlite'
import type { LogRow } from '../../src/telemetry/queries.ts'

/** The 11 request_log columns (as the read API returns them). */
export type { LogRow } from '../../src/telemetry/queries.ts'

export interface MetaRow {
  log_id: number
  request_id: string
  chain: string
  api: string
  seq: number
  step: number | null
  try: number | null
  stream: number
  http_status: number | null
  response_id: string | null
  served_model: string | null
  first_byte_ms: number | null
  first_token_ms: number | null
  cost_usd: number | null
}

function withDb<T>(path: string, fn: (db: Database) => T): T {
  const db = new Database(path, { readonly: true })
  try {
    return fn(db)
  } finally {
    db.close()
  }
}

export function readRows(path: string): LogRow[] {
  return withDb(path, (db) => db.query('SELECT * FROM request_log ORDER BY id').all() as LogRow[])
}

export function readMeta(path: string): MetaRow[] {
  return withDb(path, (db) => db.query('SELECT * FROM request_log_meta ORDER BY log_id').all() as MetaRow[])
}

export function rowById(path: string, id: number): LogRow | null {
  return withDb(path, (db) => db.query('SELECT * FROM request_log WHERE id = ?').get(id) as LogRow | null)
}

/** The deadman_rollback side table: the facts of each rollback row. */
export function readRollbackFacts(path: string): Record<string, unknown>[] {
  return withDb(path, (db) => db.query('SELECT * FROM deadman_rollback ORDER BY log_id').all() as Record<string, unknown>[])
}
