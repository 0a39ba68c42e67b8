/**
 * Chain entries deleted with their archives (`retention.archive_keep_days`).
 * Before an archive month is deleted, the runs of consecutive chain entries
 * it holds are recorded in the live database (`chain_pruned`, migration
 * 10): each run's first and last position, the hash its first entry
 * follows and the hash of its last. `witness verify --archives` then takes
 * a gap in the chain that such runs fill exactly, linked hash to hash, as
 * deleted by retention, not as entries removed by hand.
 */
import type { Database } from 'bun:sqlite'
import { hasTable } from './sources.ts'

export interface PrunedRun {
  fromSeq: number
  toSeq: number
  /** The prev_hash of entry fromSeq: the hash of the entry before the run. */
  prevHash: string
  /** The hash of entry toSeq. */
  hash: string
}

/** The runs of consecutive chain entries in a database (an archive about to be deleted). */
export function chainRunsOf(db: Database): PrunedRun[] {
  if (!hasTable(db, 'log_chain')) return []
  const runs: PrunedRun[] = []
  for (const e of db.query('SELECT seq, prev_hash, hash FROM log_chain ORDER BY seq').iterate() as Iterable<{ seq: number; prev_hash: string; hash: string }>) {
    const last = runs.at(-1)
    if (last && e.seq === last.toSeq + 1) Object.assign(last, { toSeq: e.seq, hash: e.hash })
    else runs.push({ fromSeq: e.seq, toSeq: e.seq, prevHash: e.prev_hash, hash: e.hash })
  }
  return runs
}

/** Records the runs of a month's archive before it is deleted (in the live database). */
export function recordPruned(live: Database, month: string, runs: readonly PrunedRun[], at: string): void {
  const insert = live.query('INSERT OR IGNORE INTO chain_pruned (from_seq, to_seq, prev_hash, hash, month, pruned_at) VALUES (?, ?, ?, ?, ?, ?)')
  live.transaction(() => {
    for (const r of runs) insert.run(r.fromSeq, r.toSeq, r.prevHash, r.hash, month, at)
  })()
}

/** The archive months whose chain runs were recorded before retention deleted them. */
export function prunedMonths(db: Database): Set<string> {
  if (!hasTable(db, 'chain_pruned')) return new Set()
  return new Set((db.query('SELECT DISTINCT month FROM chain_pruned').values() as [string][]).map((r) => r[0]))
}

/** The recorded runs, by position (none in a database from before migration 10, or an archive). */
export function readPruned(db: Database): PrunedRun[] {
  if (!hasTable(db, 'chain_pruned')) return []
  return db.query('SELECT from_seq AS fromSeq, to_seq AS toSeq, prev_hash AS prevHash, hash FROM chain_pruned ORDER BY from_seq').all() as PrunedRun[]
}

/**
 * Whether entries fromSeq..toSeq are exactly runs deleted by retention,
 * linked from `before` (the hash of entry fromSeq - 1) to `after` (the
 * prev_hash of entry toSeq + 1; null when the chain ends there).
 */
export function prunedGap(runs: readonly PrunedRun[], fromSeq: number, toSeq: number, before: string, after: string | null): boolean {
  let at = fromSeq
  let hash = before
  for (const r of runs) {
    if (r.toSeq < at) continue
    if (r.fromSeq !== at || r.prevHash !== hash || r.toSeq > toSeq) return false
    at = r.toSeq + 1
    hash = r.hash
    if (at > toSeq) return after === null || after === hash
  }
  return false
}
