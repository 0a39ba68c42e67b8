/**
 * did-call on the live database, with the rows of its whole stored slices
 * added up from their row counts (slice_row_counts) instead of counted entry
 * by entry in the (agent, provider, timestamp) index: a 24-hour window is
 * about 144 small sums and one or two range counts (the window's partial
 * first and last slices, the slices not stored or no longer true), instead
 * of an index range of every row of the day. The rare statuses, the pending
 * rows and the last call are read as before (queries.ts); success is the
 * rest. Everything is read in one snapshot.
 *
 * A short window (fewer than MIN_STORED_SLICES stored slices in it) is
 * counted from the index as before: checking the stored slices reads every
 * row added since the last check (up to a minute of rows), which a busy
 * router can make dearer than the hour's count it would replace.
 *
 * A slice's counts are used only beside its stats_slice row, and only if
 * that slice is still true by the checks loadStoredSlices applies (stillTrue) (no row
 * added to it since it was folded, its lowest row not gone); see
 * slice-store.ts for why that is enough. Counts without a slice (left when
 * a slice is deleted by hand) are never read.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import { type DidCallCounts, type DidCallQuery, didCallCounts, didCallCountsWithTotal, didCallParts } from './queries.ts'
import { type StoredHead, hasRowCountsTable, stillTrue } from './slice-store.ts'
import { SLICE_MS } from './stats-window.ts'

/** Below this many stored slices in the window (two hours), the index count is the cheaper one. */
export const MIN_STORED_SLICES = 12

/** What `q.agent` did with `q.provider` in the window, from the live database `db` (read-only is fine). */
export function didCallCountsLive(db: Database, q: DidCallQuery): DidCallCounts {
  // An older database read by the command line (not migrated: read-only), or an archive.
  if (!hasRowCountsTable(db)) return didCallCounts(db, q)
  return db.transaction(() => didCallCountsInSnapshot(db, q))()
}

function didCallCountsInSnapshot(db: Database, q: DidCallQuery): DidCallCounts {
  const slices = trueSlices(db, q)
  if (slices === null) return didCallCounts(db, q)
  let total = 0
  // The window as the index reads it: timestamps compared as text. Stored slices are cut at text
  // bounds inside it, so [since, until) is split exactly, whatever form since and until take.
  let cursor = q.since
  for (const slice of slices) {
    if (slice.start > cursor) total += rangeCount(db, q, cursor, slice.start)
    total += slice.rows
    cursor = slice.end
  }
  if (q.until === undefined || cursor < q.until) total += rangeCount(db, q, cursor, q.until)
  return didCallCountsWithTotal(db, didCallParts(q), total)
}

/** Rows of the query's agent, provider (and model) with a timestamp in [since, until). */
function rangeCount(db: Database, q: DidCallQuery, since: string, until: string | undefined): number {
  const { sql, params } = didCallParts({ ...q, since, until }).total
  return (db.query(sql).get(params) as { n: number }).n
}

interface TrueSlice {
  start: string
  end: string
  /** The slice's rows of the query's agent, provider (and model). */
  rows: number
}

/**
 * The stored slices lying wholly inside the window that are still true, oldest first, with their
 * rows of the query; null when the window has fewer than MIN_STORED_SLICES stored slices.
 */
function trueSlices(db: Database, q: DidCallQuery): TrueSlice[] | null {
  const until = q.until === undefined ? '' : 'AND slice_start < $until'
  const bounds = { $since: q.since, ...(q.until === undefined ? {} : { $until: q.until }) }
  const stored = db
    .query(`SELECT slice_start, as_of_id, lo_id FROM stats_slice WHERE slice_start >= $since ${until} ORDER BY slice_start`)
    .all(bounds) as StoredHead[]
  if (stored.length < MIN_STORED_SLICES) return null
  const model = q.model === undefined ? '' : 'AND model = $model'
  const counted = db
    .query(
      `SELECT slice_start, sum(n) AS n FROM slice_row_counts
       WHERE agent_name = $agent AND provider = $provider AND slice_start >= $since ${until} ${model} GROUP BY slice_start`,
    )
    .values({ ...bounds, $agent: q.agent, $provider: q.provider, ...(q.model === undefined ? {} : { $model: q.model }) }) as [string, number][]
  const rows = new Map(counted)
  const isTrue = stillTrue(db)
  const out: TrueSlice[] = []
  for (const slice of stored) {
    const end = isoTime(Date.parse(slice.slice_start) + SLICE_MS)
    if (q.until !== undefined && end > q.until) continue
    if (!isTrue(slice)) continue
    out.push({ start: slice.slice_start, end, rows: rows.get(slice.slice_start) ?? 0 })
  }
  return out
}
