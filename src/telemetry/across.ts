/**
 * The read queries over several databases with the same schema: the live
 * file and the archive files of the period asked for (see
 * retention/read-sources.ts). Ids are unique across one witness's files, so
 * a keyset (timestamp, id) orders rows across files as in one database.
 * A row can be in two files at once (copied to its archive, not yet deleted
 * from the live file: a moment in every archive batch); it is the same row
 * (the archive job checks every column) and is taken once.
 *
 * With one database each function is the plain query of queries.ts.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import type { Status } from './schema.ts'
import {
  type DidCallCounts,
  type DidCallQuery,
  type LogRow,
  type PageKey,
  type RequestFilter,
  type RequestStory,
  didCallCounts,
  idsPresent,
  listRequests,
  mergeNewestFirst,
  requestRow,
  requestStory,
  storyRows,
  timeSpan,
} from './queries.ts'

/** A database to read, and for an archive the bound every row in it is older than. */
export interface Source {
  db: Database
  /** Every row in the file has an earlier timestamp (an archive: the start of the month after its own). */
  olderThan?: string
}

/**
 * One page of rows matching `filter` across `sources`, newest first,
 * strictly older than `before`. The sources are read in the order given:
 * the live file must come first, so a row the archive job moves meanwhile
 * is found in the live file, or else (copied before it was deleted) in its
 * archive. Archives whose rows are all older than a full page found so far
 * are not read (archives newest month first: a page reads one or two).
 */
export function listAcross(sources: readonly Source[], filter: RequestFilter, limit: number, before?: PageKey): LogRow[] {
  if (sources.length === 1) return listRequests(sources[0]!.db, filter, limit, before)
  let rows: LogRow[] = []
  for (const source of sources) {
    const last = rows[limit - 1]
    if (last && source.olderThan !== undefined && source.olderThan <= last.timestamp) continue
    // The newest `limit` rows overall are each among the newest `limit` of the file they are in.
    rows = mergeNewestFirst([rows, listRequests(source.db, filter, limit, before)], limit)
  }
  return rows
}

/**
 * Every row matching `filter` from `before` on (at most `max`), a page at a
 * time: each page is its own short read of each file (no read transaction
 * stays open while the caller sends a page on).
 */
export function* walkAcross(sources: readonly Source[], filter: RequestFilter, before: PageKey | undefined, max = Infinity, pageSize = 1000): Generator<LogRow[]> {
  let key = before
  let sent = 0
  while (sent < max) {
    const want = Math.min(pageSize, max - sent)
    const rows = listAcross(sources, filter, want, key)
    if (rows.length) yield rows
    sent += rows.length
    const last = rows[rows.length - 1]
    if (rows.length < want || !last) return
    key = { timestamp: last.timestamp, id: last.id }
  }
}

/**
 * The row `id` and every row of its request, from whichever of `dbs` hold them (null if no file has
 * the row, or if `agent` is given and the row is another agent's: that is decided before anything
 * else is read, so such a row costs what a missing one does).
 */
export function storyAcross(dbs: readonly Database[], id: number, agent?: string): { row: LogRow; request: RequestStory | null } | null {
  for (const db of dbs) {
    const row = requestRow(db, id)
    if (!row) continue
    if (agent !== undefined && row.agent_name !== agent) return null
    const request = requestStory(db, id)
    if (request && dbs.length > 1) {
      const rows = dbs.flatMap((other) => (other === db ? request.rows : storyRows(other, request.request_id)))
      request.rows = mergeNewestFirst([rows]).sort((a, b) => a.id - b.id)
    }
    return { row, request }
  }
  return null
}

/**
 * did-call counts over the live file and archives: each file's counts
 * summed, less the live rows that are also in an archive (looked for among
 * the live rows no newer than the archive's newest row, which are few: the
 * archive job moves the oldest rows first, so these are the batch being
 * moved, pending rows and late rows). The live file is read in one read
 * transaction and each archive in one, so the rows subtracted are exactly
 * those counted twice even while the archive job runs.
 */
export function didCallCountsAcross(live: Database, archives: readonly Database[], q: DidCallQuery): DidCallCounts {
  const filter: RequestFilter = { agent: q.agent, provider: q.provider, model: q.model, since: q.since, until: q.until }
  return live.transaction(() => {
    const total = didCallCounts(live, q)
    const byStatus = total.byStatus
    let lastCallAt = total.lastCallAt
    for (const archive of archives) {
      archive.transaction(() => {
        const counts = didCallCounts(archive, q)
        for (const [status, n] of Object.entries(counts.byStatus) as [Status, number][]) byStatus[status] = (byStatus[status] ?? 0) + n
        if (counts.lastCallAt !== null && (lastCallAt === null || counts.lastCallAt > lastCallAt)) lastCallAt = counts.lastCallAt
        for (const row of liveCopies(live, archive, filter)) {
          const left = byStatus[row.status]! - 1
          if (left > 0) byStatus[row.status] = left
          else delete byStatus[row.status]
        }
      })()
    }
    return { byStatus, lastCallAt }
  })()
}

/** The live rows matching `filter` that are also in `archive`. */
function* liveCopies(live: Database, archive: Database, filter: RequestFilter): Generator<LogRow> {
  const span = timeSpan(archive)
  if (!span) return
  const since = filter.since !== undefined && filter.since > span.first ? filter.since : span.first
  const afterLast = isoTime(Date.parse(span.last) + 1)
  const until = filter.until !== undefined && filter.until < afterLast ? filter.until : afterLast
  if (since >= until) return
  for (const page of walkAcross([{ db: live }], { ...filter, since, until }, undefined)) {
    const present = idsPresent(archive, page.map((r) => r.id))
    for (const row of page) if (present.has(row.id)) yield row
  }
}
