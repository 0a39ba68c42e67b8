/**
 * A slice folded from its rows (stats.ts SliceFolder) without holding the
 * event loop. bun:sqlite is synchronous: the 10-minute slice of a witness
 * writing a few hundred rows a second holds 100,000 rows or more, and
 * folding it in one go held the loop for most of a second, every request
 * and heartbeat waiting behind a dashboard's refresh.
 *
 * Here the rows are read one at a time, newest first across the files
 * given, in one read snapshot per file (the lookups the fold makes see the
 * same rows it reads), and `pace` is awaited every few rows: it gives the
 * loop back when the fold has held it long enough. A snapshot held across
 * turns of the loop needs a connection nothing else uses meanwhile, so a
 * read that shares its connections (the server's reader) folds through
 * OwnReaders: read-only connections of its own, closed after the read.
 */
import { Database } from 'bun:sqlite'
import { type StatRow, databasesOf, iterateStatRows, newestFirst, statRows } from './queries.ts'
import { type FoldedSlice, snapshotHead } from './slice-store.ts'
import { SliceFolder } from './stats.ts'

/** Rows folded between two calls of `pace`. */
const ROWS_BETWEEN_LOOKS = 64

/**
 * Folds the rows of [from, to) in `conns` (the live file first; `rowsIn`:
 * only those whose files hold rows of that time) in one read snapshot of
 * each, awaiting `pace` every ROWS_BETWEEN_LOOKS rows. The fold looks
 * through all of `conns` for a request's other rows (its retry may be in
 * next month's file). The connections must be the caller's alone until
 * this settles.
 */
export async function foldInSnapshot(
  conns: readonly Database[],
  from: string,
  to: string,
  pace: () => Promise<void>,
  rowsIn: (conn: Database, i: number) => boolean = () => true,
): Promise<FoldedSlice> {
  const begun: Database[] = []
  const iterators: Generator<StatRow>[] = []
  try {
    for (const conn of conns) {
      conn.exec('BEGIN DEFERRED')
      begun.push(conn)
    }
    const head = snapshotHead(conns[0]!)
    iterators.push(...conns.filter(rowsIn).map((conn) => iterateStatRows(conn, from, to)))
    const folder = new SliceFolder(conns)
    for (const row of newestFirstAcross(iterators)) {
      folder.add(row)
      if (folder.rows % ROWS_BETWEEN_LOOKS === 0) await pace()
    }
    return { from, to, ...head, partial: folder.finish(), rows: folder.rows, maxId: folder.maxId, rowCounts: folder.rowCounts }
  } finally {
    for (const iterator of iterators) iterator.return(undefined)
    for (const conn of begun) conn.exec('COMMIT')
  }
}

/** foldInSnapshot in one go (the first of `dbs` in one transaction), for `rowsIn` of them. */
export function foldAtOnce(dbs: Database | readonly Database[], from: string, to: string, rowsIn: readonly Database[] = databasesOf(dbs)): FoldedSlice {
  const all = databasesOf(dbs)
  return all[0]!.transaction(() => {
    const head = snapshotHead(all[0]!)
    const folder = new SliceFolder(all)
    const lists = rowsIn.map((db) => statRows(db, from, to))
    for (const row of newestFirstAcross(lists.map((list) => list[Symbol.iterator]()))) folder.add(row)
    return { from, to, ...head, partial: folder.finish(), rows: folder.rows, maxId: folder.maxId, rowCounts: folder.rowCounts }
  })()
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

/**
 * Read-only connections of a read's own to the files it reads, opened on
 * first use and closed by `close`, so a fold may hold a snapshot across
 * turns of the loop while the server's shared reader serves other reads.
 */
export class OwnReaders {
  private readonly own = new Map<Database, Database>()

  /**
   * Folds the rows of [from, to) in `rowsIn`, looking through all of `dbs`
   * for a request's other rows, giving the loop back as `pace` says, through
   * connections of this read's own. A database with no file to open again
   * (in memory) is folded in one go.
   */
  fold(dbs: readonly Database[], rowsIn: readonly Database[], from: string, to: string, pace: () => Promise<void>): Promise<FoldedSlice> {
    if (dbs.some((db) => !hasFile(db))) return Promise.resolve(foldAtOnce(dbs, from, to, rowsIn))
    return foldInSnapshot(dbs.map((db) => this.connectionTo(db)), from, to, pace, (_, i) => rowsIn.includes(dbs[i]!))
  }

  private connectionTo(db: Database): Database {
    let conn = this.own.get(db)
    if (!conn) {
      conn = new Database(db.filename, { readonly: true, strict: true })
      this.own.set(db, conn)
      conn.exec('PRAGMA busy_timeout = 5000')
    }
    return conn
  }

  close(): void {
    for (const conn of this.own.values()) conn.close()
    this.own.clear()
  }
}

function hasFile(db: Database): boolean {
  return db.filename !== '' && db.filename !== ':memory:' && !db.filename.startsWith('file::memory:')
}
