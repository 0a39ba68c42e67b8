/**
 * Gathering evidence for verification from SQLite files (the live database
 * or an archive, which have the same tables) into the work store, and what
 * the gathered evidence says of where the chain begins. A git export is read
 * by export-folder.ts.
 */
import type { Database } from 'bun:sqlite'
import { readState } from '../jobs/job-db.ts'
import { ARCHIVED_MAX_ID_KEY } from '../retention/mover.ts'
import { exportedThrough } from '../sync/sync-state.ts'
import { hasTable } from '../telemetry/schema.ts'
import type { IdRanges } from './id-ranges.ts'
import { type PrunedRecord, type PrunedRun, readPruned } from './pruned.ts'
import { decodeRecord, finishedByRecovery } from './record.ts'
import { Breather, type WorkStore, idsOf } from './work-store.ts'

/** Where the chain begins in a live database (rows below were finished before it existed). */
export function chainStartsAt(db: Database, schema = 'main'): number {
  const value = readState(db, 'chain.first_log_id', schema)
  return value ? Number(value) : 0
}

/** What the live database says beside its rows and entries, read in the same snapshot. */
export interface LiveFacts {
  /** Whether it has a chain at all (a database from before the chain, or with the table dropped, has none). */
  hasChain: boolean
  userVersion: number
  /** Whether rows were ever moved to the archives. */
  archived: boolean
  /** chain.first_log_id */
  chainStartsAt: number
  pruned: PrunedRecord[]
  /** Runs of checkpoint ids missing below the highest (the live file keeps every checkpoint it makes), the first few. */
  checkpointGaps: [number, number][]
  /** The highest checkpoint id in the live file (0: none). */
  lastCheckpoint: number
  /** How far the exports reached (sync-state.ts). */
  exported: { entries: number; checkpoints: number }
}

/**
 * Copies the live database into the store in one read snapshot, with what else verify reads of it:
 * taken before any archive is read, a row finished, or moved to an archive, while verify reads is
 * seen whole (in the snapshot, and maybe in its archive too), never half (finished without its
 * chain entry yet).
 */
export async function gatherLive(store: WorkStore, path: string): Promise<LiveFacts> {
  const { db } = store
  return store.copyDatabase(path, path, (schema) => ({
    hasChain: hasTable(db, 'log_chain', schema),
    userVersion: (db.query(`PRAGMA ${schema}.user_version`).get() as { user_version: number }).user_version,
    archived: readState(db, ARCHIVED_MAX_ID_KEY, schema) !== null,
    chainStartsAt: chainStartsAt(db, schema),
    pruned: readPruned(db, schema),
    ...checkpointIds(db, schema),
    exported: exportedThrough(db, schema),
  }))
}

/** The live file's checkpoint ids: the highest, and the first runs missing below it (ids count from 1, and none is ever deleted). */
function checkpointIds(db: Database, schema: string): { lastCheckpoint: number; checkpointGaps: [number, number][] } {
  if (!hasTable(db, 'checkpoints', schema)) return { lastCheckpoint: 0, checkpointGaps: [] }
  const last = (db.query(`SELECT max(id) AS id FROM ${schema}.checkpoints`).get() as { id: number | null }).id ?? 0
  const gaps = db
    .query(
      `SELECT 1 AS "from", min(id) - 1 AS "to" FROM ${schema}.checkpoints HAVING min(id) > 1
       UNION ALL
       SELECT c.id + 1, (SELECT min(d.id) FROM ${schema}.checkpoints d WHERE d.id > c.id) - 1 FROM ${schema}.checkpoints c
       WHERE c.id < ? AND NOT EXISTS (SELECT 1 FROM ${schema}.checkpoints d WHERE d.id = c.id + 1)
       ORDER BY 1 LIMIT 20`,
    )
    .values(last) as [number, number][]
  return { lastCheckpoint: last, checkpointGaps: gaps }
}

/**
 * Copies an archive (the file at `path`, a compressed month's audit copy; `shown`: the archive's
 * own path) into the store, its checkpoints if it holds any; returns its pending rows (the archive
 * job moves only finished rows).
 */
export function gatherArchive(store: WorkStore, path: string, shown: string): Promise<IdRanges> {
  return store.copyDatabase(path, shown, (schema) => idsOf(store.db, `SELECT id FROM ${schema}.request_log WHERE status = 'pending' ORDER BY id`))
}

/** What the gathered checkpoints say, read from the store (however many there are). */
export interface GatheredCheckpoints {
  count: number
  /** The one with the highest id: its id and the entry it signed. */
  newest: { id: unknown; seq: unknown } | null
  /** The highest entry any of them signed (0: none). */
  highestSeq: number
}

export function gatheredCheckpoints(store: WorkStore): GatheredCheckpoints {
  const { db } = store
  const { count, highest } = db.query("SELECT count(*) AS count, max(CASE WHEN typeof(seq) IN ('integer', 'real') THEN seq END) AS highest FROM checkpoints").get() as { count: number; highest: number | null }
  const newest = db.query('SELECT id, seq FROM checkpoints ORDER BY id DESC, n DESC LIMIT 1').get() as { id: unknown; seq: unknown } | null
  return { count, newest, highestSeq: highest ?? 0 }
}

/** Whether a gathered checkpoint names `machine`; else up to `limit` of the names they carry. */
export function checkpointMachines(store: WorkStore, machine: string, limit: number): { has: boolean; names: string[] } {
  if (store.db.query('SELECT 1 FROM checkpoints WHERE machine = ? LIMIT 1').get(machine)) return { has: true, names: [machine] }
  const names = store.db.query('SELECT DISTINCT machine FROM checkpoints LIMIT ?').all(limit) as { machine: unknown }[]
  return { has: false, names: names.map((n) => String(n.machine)) }
}

/** The ids of the rows found in two sources with different contents (store.conflicts). */
export function conflictingRows(store: WorkStore): Promise<IdRanges> {
  return idsOf(store.db, 'SELECT id FROM conflicts ORDER BY id')
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
export async function chainBegins(stated: number, store: WorkStore, empty: 'none' | 'stated', pruned: readonly PrunedRun[] = []): Promise<number> {
  const runsFirst = pruned.map((r) => r.firstLogId).filter((id): id is number => typeof id === 'number')
  const { db } = store
  if (!db.query('SELECT 1 FROM entries LIMIT 1').get() && runsFirst.length === 0) return empty === 'none' ? 0 : stated
  const first = runsFirst.reduce((min, id) => Math.min(min, id), stated)
  // The smallest row id chained below it, rows finished by start-up recovery aside.
  const breather = new Breather()
  for (const e of db.query('SELECT log_id, record FROM entries WHERE log_id < ? ORDER BY log_id').iterate(first) as Iterable<{ log_id: number; record: string }>) {
    if (breather.due()) await breather.pause()
    const recorded = decodeRecord(e.record)
    if (!(recorded && finishedByRecovery(recorded.row))) return e.log_id
  }
  return first
}
