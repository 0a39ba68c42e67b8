/**
 * Gathering evidence for verification: from a SQLite file (the live
 * database or an archive, which have the same tables) and from a git export
 * (`<machine>/YYYY/MM/DD.ndjson` rows, `<machine>/chain/*.jsonl` chain
 * entries, `<machine>/checkpoints/*.json`, `<machine>/public-key.json`).
 */
import type { Database } from 'bun:sqlite'
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import type { Checkpoint } from './checkpoint.ts'
import type { PublicKeyFile } from './keys.ts'
import type { PrunedRun } from './pruned.ts'
import { LOG_COLUMNS, type LogRow, decodeRecord, finishedByRecovery } from './record.ts'
import type { ChainEntry, Evidence, RowView } from './verify.ts'

export function hasTable(db: Database, name: string): boolean {
  return Boolean(db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name))
}

export interface Gathered {
  entries: ChainEntry[]
  rows: Map<number, RowView>
  checkpoints: Checkpoint[]
  /** Ids found in two databases (live and archive, two archives) with different contents. */
  conflicts: Set<number>
}

export function emptyGathered(): Gathered {
  return { entries: [], rows: new Map(), checkpoints: [], conflicts: new Set() }
}

/** Whether two views of a row say the same (a finished row is the same wherever it is). */
function sameView(a: RowView, b: RowView): boolean {
  return LOG_COLUMNS.every((c) => a.row[c] === b.row[c]) && a.requestId === b.requestId && a.responseId === b.responseId
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
    const view: RowView = meta ? { row, requestId: r.request_id ?? null, responseId: r.response_id ?? null } : { row }
    const seen = into.rows.get(Number(r.id))
    if (seen && !sameView(seen, view)) into.conflicts.add(Number(r.id))
    into.rows.set(Number(r.id), view)
  }
  if (hasTable(db, 'checkpoints')) into.checkpoints.push(...(db.query('SELECT * FROM checkpoints ORDER BY id').all() as Checkpoint[]))
  return into
}

/** The ids of an archive's pending rows: the archive job moves only finished rows, so any one was put there by hand. */
export function pendingIn(db: Database): number[] {
  return (db.query("SELECT id FROM request_log WHERE status = 'pending' ORDER BY id").all() as { id: number }[]).map((r) => r.id)
}

/** Where the chain begins in a live database (rows below were finished before it existed). */
export function chainStartsAt(db: Database): number {
  if (!hasTable(db, 'witness_state')) return 0
  const value = (db.query("SELECT value FROM witness_state WHERE key = 'chain.first_log_id'").get() as { value: string } | null)?.value
  return value ? Number(value) : 0
}

/**
 * Where the chain begins, for telling rows finished before it existed from unchained ones: what the
 * database or the export states (not signed: a value raised by hand would pass forged rows off as
 * older than the chain), but never past the first row chained (every row from there on was
 * finished with the chain there; the rows from before it are the oldest, which archiving takes
 * first), whether its entry is here or was deleted with its archive (a signed run says its first
 * row). Rows left pending when the chain began and finished by start-up recovery are chained with
 * smaller ids, and do not count. With no entry at all: nowhere in an export (`none`), as stated in
 * a database (`stated`: one just given its chain, or whose entries all moved out, which its
 * checkpoints account for).
 */
export function chainBegins(stated: number, entries: readonly ChainEntry[], empty: 'none' | 'stated', pruned: readonly PrunedRun[] = []): number {
  const runsFirst = pruned.map((r) => r.firstLogId).filter((id): id is number => typeof id === 'number')
  if (entries.length === 0 && runsFirst.length === 0) return empty === 'none' ? 0 : stated
  let first = Math.min(stated, ...runsFirst)
  for (const entry of entries) {
    if (entry.log_id >= first) continue
    const recorded = decodeRecord(entry.record)
    if (!(recorded && finishedByRecovery(recorded.row))) first = entry.log_id
  }
  return first
}

/** The files under `dir` whose names end in `suffix`: regular files only (sync writes no link; one put there could loop or point anywhere). */
function filesUnder(dir: string, suffix: string): string[] {
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) return []
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    const stat = lstatSync(path)
    if (stat.isDirectory()) out.push(...filesUnder(path, suffix))
    else if (stat.isFile() && name.endsWith(suffix)) out.push(path)
  }
  return out
}

/** The JSON values of a file's lines; a line that is not JSON is named in `bad` (`path:line`) and left out. */
function lines(path: string, bad: string[], shown: string): { value: unknown; text: string; at: string }[] {
  const out: { value: unknown; text: string; at: string }[] = []
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((text, i) => {
      if (!text.trim()) return
      const at = `${shown}:${i + 1}`
      try {
        out.push({ value: JSON.parse(text) as unknown, text, at })
      } catch {
        bad.push(`${at} is not a JSON line`)
      }
    })
  return out
}

/** In a machine's folder of an export: where its chain begins (export-proof.ts). */
export const CHAIN_START_FILE = 'chain-start.json'

/** The bytes of the checkpoint files of a machine's folder, as gatherExport reads them (export-history.ts compares the history with these). */
export function checkpointFiles(clone: string, machine: string): Uint8Array[] {
  return filesUnder(join(clone, machine, 'checkpoints'), '.json').map((file) => readFileSync(file))
}

/** The machines that have a folder in an export clone. */
export function exportMachines(clone: string): string[] {
  return readdirSync(clone).filter((name) => !name.startsWith('.') && statSync(join(clone, name)).isDirectory())
}

/**
 * What one machine's folder of a git export holds, and its published public key. `problems` names
 * what cannot be evidence: lines that are not JSON, and an id on two lines that differ (one of
 * them was put there by hand: neither is taken).
 */
export function gatherExport(
  clone: string,
  machine: string,
): { gathered: Gathered; key: PublicKeyFile | null; problems: string[]; chainStartsAt: number } {
  const root = join(clone, machine)
  const gathered = emptyGathered()
  const problems: string[] = []
  const shown = (file: string) => relative(clone, file)
  const firstAt = new Map<number, { text: string; at: string }>()
  const conflicting = new Set<number>()
  for (const file of filesUnder(root, '.ndjson')) {
    for (const { value, text, at } of lines(file, problems, shown(file))) {
      const line = value as LogRow & { id: unknown; request_id: string | null }
      const id = Number(line.id)
      const first = firstAt.get(id)
      if (first) {
        if (first.text !== text) {
          problems.push(`row ${id} is on two lines that differ (${first.at} and ${at}): neither is taken`)
          conflicting.add(id)
        }
        continue
      }
      firstAt.set(id, { text, at })
      if (line.status === 'pending') {
        // The chain cannot speak for it (only finished rows join it), and sync never writes one.
        problems.push(`row ${id} (${at}) is pending: sync exports only finished rows, so the line was put there by hand`)
        continue
      }
      const row = Object.fromEntries(LOG_COLUMNS.map((c) => [c, line[c] ?? null])) as LogRow
      gathered.rows.set(id, { row, requestId: line.request_id ?? null })
    }
  }
  for (const id of conflicting) gathered.rows.delete(id)
  for (const file of filesUnder(join(root, 'chain'), '.jsonl')) gathered.entries.push(...lines(file, problems, shown(file)).map((l) => l.value as ChainEntry))
  for (const file of filesUnder(join(root, 'checkpoints'), '.json')) {
    try {
      gathered.checkpoints.push(JSON.parse(readFileSync(file, 'utf8')) as Checkpoint)
    } catch {
      problems.push(`${shown(file)} is not JSON`)
    }
  }
  gathered.checkpoints.sort((a, b) => a.id - b.id)
  const keyPath = join(root, 'public-key.json')
  let key: PublicKeyFile | null = null
  try {
    key = existsSync(keyPath) ? (JSON.parse(readFileSync(keyPath, 'utf8')) as PublicKeyFile) : null
  } catch {
    problems.push(`${shown(keyPath)} is not JSON`)
  }
  let chainStartsAt = 0
  const startPath = join(root, CHAIN_START_FILE)
  if (existsSync(startPath)) {
    try {
      chainStartsAt = Number((JSON.parse(readFileSync(startPath, 'utf8')) as { first_log_id: unknown }).first_log_id) || 0
    } catch {
      problems.push(`${shown(startPath)} is not JSON`)
    }
  }
  return { gathered, key, problems, chainStartsAt }
}

export function toEvidence(g: Gathered, keys: Map<string, JsonWebKey>, complete: boolean, chainStartsAtLogId: number, pruned: readonly PrunedRun[] = []): Evidence {
  return { ...g, keys, complete, chainStartsAtLogId, pruned }
}
