/**
 * A slice folded from its rows (stats.ts SliceFolder) without holding the
 * event loop. bun:sqlite is synchronous: the 10-minute slice of a witness
 * writing a few hundred rows a second holds 100,000 rows or more, and
 * folding it in one go held the loop for most of a second, every request
 * and heartbeat waiting behind a dashboard's refresh.
 *
 * Here the rows are read a page at a time, newest first across the files
 * given, each page its own short read, and `pace` is awaited every few rows:
 * it gives the loop back when the fold has held it long enough. No read
 * snapshot is held across those turns (one held by overlapping reads kept
 * the WAL from starting over, and kept the archive job out of an archive
 * file). What a snapshot would give is kept by ids instead (FoldBounds,
 * read once as a read begins): the fold reads, and looks up, only the rows
 * that existed then (ids up to the highest then: the files share one
 * sequence), and a row that was pending then is folded as pending,
 * whatever it is by the time its page is read (its retry, written since,
 * is not seen: counted as failed, it would be counted twice). A fold
 * during which the archive job moved rows (the delete epoch moved) is
 * done again, over every file: the rows moved may be in a file the first
 * fold left out (by its span, read before they moved).
 */
import type { Database } from 'bun:sqlite'
import { type PageKey, type StatRow, databasesOf, idRange, newestFirst, statRowsPage } from './queries.ts'
import { type FoldedSlice, deleteEpoch, snapshotHead } from './slice-store.ts'
import { SliceFolder } from './stats.ts'

/** Rows folded between two calls of `pace`. */
const ROWS_BETWEEN_LOOKS = 64
/** Rows read at a time (one short read: a few ms). */
const PAGE_ROWS = 1_000

/** Where a read's folds stop, taken once as it begins. */
export interface FoldBounds {
  /** The live file's highest id, and its delete epoch (what a store of a fold checks). */
  head: { asOfId: number; epoch: string | null }
  /**
   * The highest id any of the files had, or the live file had ever handed out (its rows may all be
   * archived): the files share one sequence, so rows the archive job copies meanwhile are in.
   */
  uptoId: number
  /** The rows pending then. */
  pending: ReadonlySet<number>
}

export function foldBounds(dbs: Database | readonly Database[]): FoldBounds {
  const [live, ...archives] = databasesOf(dbs)
  return live!.transaction(() => {
    const head = snapshotHead(live!)
    const uptoId = Math.max(head.asOfId, sequenceOf(live!), ...archives.map((db) => idRange(db).hi ?? 0))
    const ids = live!.query("SELECT id FROM request_log WHERE status = 'pending' AND id <= $upto").values({ $upto: uptoId }) as [number][]
    return { head, uptoId, pending: new Set(ids.map((r) => r[0])) }
  })()
}

/** The highest id request_log has handed out (AUTOINCREMENT keeps it in sqlite_sequence); 0 if none is kept. */
function sequenceOf(db: Database): number {
  try {
    return (db.query("SELECT seq FROM sqlite_sequence WHERE name = 'request_log'").get() as { seq: number } | null)?.seq ?? 0
  } catch {
    return 0
  }
}

/** Folds done again at most this often when the archive job moves rows during them. */
const FOLD_TRIES = 3

/**
 * Folds the rows of [from, to) in `rowsIn` (by default all of `dbs`: the
 * live file first, then archives), looking through all of `dbs` for a
 * request's other rows (its retry may be in next month's file), awaiting
 * `pace` every ROWS_BETWEEN_LOOKS rows, within `bounds` (the same for every
 * slice of one read, so they agree on which rows exist).
 */
export async function foldStepwise(
  dbs: Database | readonly Database[],
  from: string,
  to: string,
  pace: () => Promise<void>,
  rowsIn: readonly Database[] = databasesOf(dbs),
  bounds: FoldBounds = foldBounds(dbs),
): Promise<FoldedSlice> {
  const all = databasesOf(dbs)
  for (let tries = 1; ; tries++) {
    const folded = await foldWithin(all, rowsIn, from, to, pace, bounds)
    if (tries >= FOLD_TRIES || deleteEpoch(all[0]!) === bounds.head.epoch) return folded
    bounds = foldBounds(all)
    // Rows moved meanwhile may now be in a file `rowsIn` left out (its span, read before, did not reach the slice).
    rowsIn = all
  }
}

async function foldWithin(all: readonly Database[], rowsIn: readonly Database[], from: string, to: string, pace: () => Promise<void>, bounds: FoldBounds): Promise<FoldedSlice> {
  const upto = bounds.uptoId
  const folder = new SliceFolder(all, upto)
  const pages = rowsIn.map((db) => pagesOf(db, from, to, upto))
  for (const row of newestFirstAcross(pages)) {
    folder.add(bounds.pending.has(row.id) && row.status !== 'pending' ? { ...row, status: 'pending' } : row)
    if (folder.rows % ROWS_BETWEEN_LOOKS === 0) await pace()
  }
  return { from, to, ...bounds.head, partial: folder.finish(), rows: folder.rows, maxId: folder.maxId, rowCounts: folder.rowCounts }
}

/** The rows of [from, to) with an id up to `uptoId`, newest first, read PAGE_ROWS at a time. */
function* pagesOf(db: Database, from: string, to: string, uptoId: number): Generator<StatRow> {
  let before: PageKey | null = null
  for (;;) {
    const page = statRowsPage(db, from, to, uptoId, before, PAGE_ROWS)
    yield* page
    const last = page[page.length - 1]
    if (page.length < PAGE_ROWS || !last) return
    before = { timestamp: last.timestamp, id: last.id }
  }
}

/**
 * Rows of several files merged newest first, lazily; a row in two of them
 * (copied to its archive, not yet deleted from the live file) is taken once,
 * by its id (a timestamp outside ASCII sorts one way in SQLite and another
 * here, so the two copies need not come one after the other).
 */
function* newestFirstAcross(sources: Generator<StatRow>[]): Generator<StatRow> {
  if (sources.length === 1) return yield* sources[0]!
  const heads = sources.map((source) => source.next())
  const taken = new Set<number>()
  for (;;) {
    let best = -1
    for (let i = 0; i < heads.length; i++) {
      const head = heads[i]!
      if (!head.done && (best < 0 || newestFirst(head.value, heads[best]!.value as StatRow) < 0)) best = i
    }
    if (best < 0) return
    const row = heads[best]!.value as StatRow
    heads[best] = sources[best]!.next()
    if (taken.has(row.id)) continue
    taken.add(row.id)
    yield row
  }
}
