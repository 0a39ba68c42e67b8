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
 * file). What a snapshot would give is kept by ids instead: the fold reads
 * only the rows, and looks only at the rows, that existed when it began (up
 * to each file's highest id then). A row is read once, whatever happens to
 * it after; what can change meanwhile is a pending row finishing, which a
 * fold may see either way, as it would at either moment. A slice whose
 * result is kept (cached, stored) has no pending row by then (finalAtMs).
 */
import type { Database } from 'bun:sqlite'
import { type PageKey, type StatRow, databasesOf, newestFirst, statRowsPage } from './queries.ts'
import { type FoldedSlice, snapshotHead } from './slice-store.ts'
import { SliceFolder } from './stats.ts'

/** Rows folded between two calls of `pace`. */
const ROWS_BETWEEN_LOOKS = 64
/** Rows read at a time (one short read: a few ms). */
const PAGE_ROWS = 1_000

/**
 * Folds the rows of [from, to) in `rowsIn` (by default all of `dbs`: the
 * live file first, then archives), looking through all of `dbs` for a
 * request's other rows (its retry may be in next month's file), awaiting
 * `pace` every ROWS_BETWEEN_LOOKS rows.
 */
export async function foldStepwise(
  dbs: Database | readonly Database[],
  from: string,
  to: string,
  pace: () => Promise<void>,
  rowsIn: readonly Database[] = databasesOf(dbs),
): Promise<FoldedSlice> {
  const all = databasesOf(dbs)
  // Where each file ends as the fold begins, and the live file's delete epoch (what a store of it checks).
  const { head, uptoIds } = all[0]!.transaction(() => {
    const head = snapshotHead(all[0]!)
    return { head, uptoIds: all.map((db, i) => (i === 0 ? head.asOfId : maxId(db))) }
  })()
  const folder = new SliceFolder(all, uptoIds)
  const pages = rowsIn.map((db) => pagesOf(db, from, to, uptoIds[all.indexOf(db)]!))
  for (const row of newestFirstAcross(pages)) {
    folder.add(row)
    if (folder.rows % ROWS_BETWEEN_LOOKS === 0) await pace()
  }
  return { from, to, ...head, partial: folder.finish(), rows: folder.rows, maxId: folder.maxId, rowCounts: folder.rowCounts }
}

function maxId(db: Database): number {
  return (db.query('SELECT max(id) AS hi FROM request_log').get() as { hi: number | null }).hi ?? 0
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
 * (copied to its archive, not yet deleted from the live file) is taken once.
 */
function* newestFirstAcross(sources: Iterator<StatRow>[]): Generator<StatRow> {
  const heads = sources.map((source) => source.next())
  let last: StatRow | null = null
  for (;;) {
    let best = -1
    for (let i = 0; i < heads.length; i++) {
      const head = heads[i]!
      if (!head.done && (best < 0 || newestFirst(head.value, heads[best]!.value as StatRow) < 0)) best = i
    }
    if (best < 0) return
    const row = heads[best]!.value as StatRow
    heads[best] = sources[best]!.next()
    if (last && newestFirst(last, row) === 0) continue
    last = row
    yield row
  }
}
