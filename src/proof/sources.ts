/**
 * Gathering evidence for verification: from a SQLite file (the live
 * database or an archive, which have the same tables) and from a git export
 * (`<machine>/YYYY/MM/DD.ndjson` rows, `<machine>/chain/*.jsonl` chain
 * entries, `<machine>/checkpoints/*.json`, `<machine>/public-key.json`).
 */
import type { Database } from 'bun:sqlite'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { Checkpoint } from './checkpoint.ts'
import type { PublicKeyFile } from './keys.ts'
import { LOG_COLUMNS, type LogRow } from './record.ts'
import type { ChainEntry, Evidence, RowView } from './verify.ts'

function hasTable(db: Database, name: string): boolean {
  return Boolean(db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name))
}

export interface Gathered {
  entries: ChainEntry[]
  rows: Map<number, RowView>
  checkpoints: Checkpoint[]
}

export function emptyGathered(): Gathered {
  return { entries: [], rows: new Map(), checkpoints: [] }
}

/** Adds what a database holds (live or archive) to `into`. */
export function gatherDatabase(db: Database, into: Gathered = emptyGathered()): Gathered {
  if (hasTable(db, 'log_chain')) into.entries.push(...(db.query('SELECT seq, log_id, prev_hash, hash, record FROM log_chain').all() as ChainEntry[]))
  const meta = hasTable(db, 'request_log_meta')
  const rows = db
    .query(
      meta
        ? 'SELECT r.*, m.request_id AS request_id, m.response_id AS response_id FROM request_log r LEFT JOIN request_log_meta m ON m.log_id = r.id'
        : 'SELECT r.* FROM request_log r',
    )
    .all() as (LogRow & { request_id?: string | null; response_id?: string | null })[]
  for (const r of rows) {
    const row = Object.fromEntries(LOG_COLUMNS.map((c) => [c, r[c]])) as LogRow
    into.rows.set(Number(r.id), meta ? { row, requestId: r.request_id ?? null, responseId: r.response_id ?? null } : { row })
  }
  if (hasTable(db, 'checkpoints')) into.checkpoints.push(...(db.query('SELECT * FROM checkpoints ORDER BY id').all() as Checkpoint[]))
  return into
}

/** Where the chain begins in a live database (rows below were finished before it existed). */
export function chainStartsAt(db: Database): number {
  if (!hasTable(db, 'witness_state')) return 0
  const value = (db.query("SELECT value FROM witness_state WHERE key = 'chain.first_log_id'").get() as { value: string } | null)?.value
  return value ? Number(value) : 0
}

function filesUnder(dir: string, suffix: string): string[] {
  if (!existsSync(dir)) return []
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, suffix))
    else if (name.endsWith(suffix)) out.push(path)
  }
  return out
}

function lines(path: string): unknown[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as unknown)
}

/** The machines that have a folder in an export clone. */
export function exportMachines(clone: string): string[] {
  return readdirSync(clone).filter((name) => !name.startsWith('.') && statSync(join(clone, name)).isDirectory())
}

/** What one machine's folder of a git export holds, and its published public key. */
export function gatherExport(clone: string, machine: string): { gathered: Gathered; key: PublicKeyFile | null } {
  const root = join(clone, machine)
  const gathered = emptyGathered()
  for (const file of filesUnder(root, '.ndjson')) {
    for (const line of lines(file) as (LogRow & { request_id: string | null })[]) {
      const row = Object.fromEntries(LOG_COLUMNS.map((c) => [c, line[c] ?? null])) as LogRow
      gathered.rows.set(Number(line.id), { row, requestId: line.request_id ?? null })
    }
  }
  for (const file of filesUnder(join(root, 'chain'), '.jsonl')) gathered.entries.push(...(lines(file) as ChainEntry[]))
  for (const file of filesUnder(join(root, 'checkpoints'), '.json')) gathered.checkpoints.push(JSON.parse(readFileSync(file, 'utf8')) as Checkpoint)
  gathered.checkpoints.sort((a, b) => a.id - b.id)
  const keyPath = join(root, 'public-key.json')
  const key = existsSync(keyPath) ? (JSON.parse(readFileSync(keyPath, 'utf8')) as PublicKeyFile) : null
  return { gathered, key }
}

export function toEvidence(g: Gathered, keys: Map<string, JsonWebKey>, complete: boolean, chainStartsAtLogId: number): Evidence {
  return { ...g, keys, complete, chainStartsAtLogId }
}
