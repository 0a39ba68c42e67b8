/**
 * Every read query over request_log, with bound parameters only. Each
 * function takes a bun:sqlite Database, so the same query runs against the
 * live file (read-only connection) or an archive file with the same schema;
 * results from several files merge with `mergeNewestFirst`.
 *
 * Rows come newest first: by timestamp, then id. ids are assigned in the
 * order the router takes timestamps, so this is id order; ordering by
 * (timestamp, id) lets every (agent|provider|agent+provider, timestamp)
 * index serve both the filter and the order, so a page is an index range
 * read of `limit` entries, never a sort of the whole window. A page ends
 * at a keyset (timestamp, id): stable while rows are being added.
 *
 * Why not `ORDER BY id` alone, as issue 4 words it: no index here has id
 * right after the filtered columns (they end in timestamp, then rowid), so
 * SQLite must read every matching row in the window and sort it (a TEMP
 * B-TREE: 0.5 ms -> 55 ms for agent+provider over 24 h at 300k rows, and
 * growing with the window), and `since` alone becomes a SCAN of the table.
 * (agent, id)-style indexes would restore the order but lose the time
 * range. So the two orders differ only for a row whose timestamp is older
 * than a row written before it (a watchdog's direct write from another
 * clock, a wall clock stepped back); such a row is listed at its time.
 *
 * The SQL text is assembled only from the constant fragments below, chosen
 * by which filters are present; every value is a bound parameter.
 */
import type { Database } from 'bun:sqlite'
import { CALL_STATUSES, LOG_COLUMNS, RARE_STATUSES, type Status, statusIn } from './schema.ts'

/** One database or several (the live file first, then archives), as a list. */
export function databasesOf(source: Database | readonly Database[]): readonly Database[] {
  return Array.isArray(source) ? source : [source as Database]
}

/** The 11 request_log columns, in table order. */
export { LOG_COLUMNS }

export interface LogRow {
  id: number
  timestamp: string
  agent_name: string
  provider: string
  model: string
  endpoint: string
  tokens_in: number | null
  tokens_out: number | null
  latency_ms: number | null
  status: Status
  error_message: string | null
}

/** The request_log_meta fields shown with a row in the story of a request. */
export interface StoryRow extends LogRow {
  seq: number | null
  step: number | null
  try: number | null
  stream: number | null
  http_status: number | null
  response_id: string | null
  served_model: string | null
  first_byte_ms: number | null
  /** Null for a non-streaming call, a stream that carried no content, or an archive from before it was recorded. */
  first_token_ms: number | null
  cost_usd: number | null
}

export interface RequestFilter {
  agent?: string
  provider?: string
  model?: string
  status?: Status
  chain?: string
  requestId?: string
  /** Inclusive lower bound, stored timestamp format. */
  since?: string
  /** Exclusive upper bound. */
  until?: string
}

/** Where a page ended: the next page holds rows strictly older than this. */
export interface PageKey {
  timestamp: string
  id: number
}

/**
 * Rows of a rare status are found through a partial index. SQLite uses a
 * partial index only when the query repeats its WHERE term, so a status
 * filter adds that constant term beside the bound `status = $status`:
 * error, timeout, fallback and rollback rows through request_log_status_time
 * (migration 2); pending rows (the calls in flight, a handful) through
 * request_log_pending, from which every other filter is checked per row
 * (the unary `+` keeps SQLite from walking a wider index instead).
 */
type Params = Record<string, string | number>

const SPARSE_TERM = statusIn('l.status', RARE_STATUSES)
const CALL_TERM = statusIn('l.status', CALL_STATUSES)
const PENDING_TERM = `l.id IN (SELECT p.id FROM request_log p WHERE p.status = 'pending')`

function filterTerms(filter: RequestFilter, params: Params): string[] {
  const viaPending = filter.status === 'pending'
  const col = (name: string) => (viaPending ? `+l.${name}` : `l.${name}`)
  const terms: string[] = []
  const add = (value: string | undefined, term: string, name: string) => {
    if (value === undefined) return
    terms.push(term)
    params[name] = value
  }
  add(filter.agent, `${col('agent_name')} = $agent`, '$agent')
  add(filter.provider, `${col('provider')} = $provider`, '$provider')
  add(filter.model, `${col('model')} = $model`, '$model')
  add(filter.status, 'l.status = $status', '$status')
  if (viaPending) terms.push(PENDING_TERM)
  else if (filter.status && filter.status !== 'success') terms.push(SPARSE_TERM)
  add(filter.chain, 'm.chain = $chain', '$chain')
  add(filter.requestId, 'm.request_id = $request_id', '$request_id')
  add(filter.since, `${col('timestamp')} >= $since`, '$since')
  add(filter.until, `${col('timestamp')} < $until`, '$until')
  return terms
}

/**
 * The FROM clause. A request id is looked up through its index first; a
 * chain is checked per row while walking request_log newest first (CROSS
 * JOIN keeps that order, so a page stops after `limit` rows).
 */
function fromClause(filter: RequestFilter): string {
  if (filter.requestId !== undefined) return 'request_log_meta m JOIN request_log l ON l.id = m.log_id'
  if (filter.chain !== undefined) return 'request_log l CROSS JOIN request_log_meta m ON m.log_id = l.id'
  return 'request_log l'
}

const SELECT_ROW = LOG_COLUMNS.map((c) => `l.${c}`).join(', ')

/** A statement and its bound parameters (exposed so tests can EXPLAIN QUERY PLAN it). */
export interface BoundQuery {
  sql: string
  params: Params
}

/** The query behind listRequests. */
export function requestsQuery(filter: RequestFilter, limit: number, before?: PageKey): BoundQuery {
  const params: Params = { $limit: limit }
  const terms = filterTerms(filter, params)
  if (before) {
    // The range term lets the index seek; the OR settles ties on timestamp by id.
    terms.push(`${filter.status === 'pending' ? '+' : ''}l.timestamp <= $before_ts`, '(l.timestamp < $before_ts OR l.id < $before_id)')
    params.$before_ts = before.timestamp
    params.$before_id = before.id
  }
  const where = terms.length ? `WHERE ${terms.join(' AND ')}` : ''
  return { sql: `SELECT ${SELECT_ROW} FROM ${fromClause(filter)} ${where} ORDER BY l.timestamp DESC, l.id DESC LIMIT $limit`, params }
}

/** One page of rows matching `filter`, newest first, strictly older than `before`. */
export function listRequests(db: Database, filter: RequestFilter, limit: number, before?: PageKey): LogRow[] {
  const { sql, params } = requestsQuery(filter, limit, before)
  return db.query(sql).all(params) as LogRow[]
}

/**
 * Splits rows read with `limit + 1` (from one database, or merged from
 * several) into a page and the key the next page starts after: a next key
 * only when more rows exist.
 */
export function pageOf(rows: LogRow[], limit: number): { rows: LogRow[]; next: PageKey | null } {
  const page = rows.slice(0, limit)
  const last = page[page.length - 1]
  return { rows: page, next: rows.length > limit && last ? { timestamp: last.timestamp, id: last.id } : null }
}

/** Orders rows newest first: timestamp, then id (descending). */
export function newestFirst(a: PageKey, b: PageKey): number {
  if (a.timestamp !== b.timestamp) return a.timestamp < b.timestamp ? 1 : -1
  return b.id - a.id
}

/**
 * Merges rows read from several databases (the live file, archives) into
 * one list, newest first, at most `limit`. A row found in two of them (same
 * id and timestamp: copied to its archive and not yet deleted from the live
 * file) is taken once.
 */
export function mergeNewestFirst<T extends PageKey>(pages: T[][], limit = Infinity): T[] {
  const out: T[] = []
  for (const row of pages.flat().sort(newestFirst)) {
    if (out.length >= limit) break
    const last = out[out.length - 1]
    if (!last || newestFirst(last, row) !== 0) out.push(row)
  }
  return out
}

/** One row by id, or null. */
export function requestRow(db: Database, id: number): LogRow | null {
  return db.query(`SELECT ${SELECT_ROW} FROM request_log l WHERE l.id = $id`).get({ $id: id }) as LogRow | null
}

export interface RequestStory {
  request_id: string
  chain: string
  api: string
  /** Every row of the request, in the order written. */
  rows: StoryRow[]
}

/** Every row of the request row `id` belongs to (null if the row has no request_log_meta). */
export function requestStory(db: Database, id: number): RequestStory | null {
  const head = db.query('SELECT request_id, chain, api FROM request_log_meta WHERE log_id = $id').get({ $id: id }) as Omit<RequestStory, 'rows'> | null
  if (!head) return null
  return { ...head, rows: storyRows(db, head.request_id) }
}

/** The rows of one request, in the order written, with their meta. */
export function storyRows(db: Database, requestId: string): StoryRow[] {
  // An archive written before schema version 5 has no first_token_ms column.
  const firstToken = db.query("SELECT 1 FROM pragma_table_info('request_log_meta') WHERE name = 'first_token_ms'").get() ? 'm.first_token_ms' : 'NULL AS first_token_ms'
  return db
    .query(
      `SELECT ${SELECT_ROW}, m.seq, m.step, m.try, m.stream, m.http_status, m.response_id, m.served_model, m.first_byte_ms, ${firstToken}, m.cost_usd
       FROM request_log_meta m JOIN request_log l ON l.id = m.log_id
       WHERE m.request_id = $request_id
       ORDER BY l.id`,
    )
    .all({ $request_id: requestId }) as StoryRow[]
}

/** Which of `ids` are in request_log. */
export function idsPresent(db: Database, ids: readonly number[]): Set<number> {
  const rows = db.query('SELECT id FROM request_log WHERE id IN (SELECT value FROM json_each($ids))').all({ $ids: JSON.stringify(ids) }) as { id: number }[]
  return new Set(rows.map((r) => r.id))
}

export interface DidCallQuery {
  agent: string
  provider: string
  model?: string
  since: string
  until?: string
}

export interface DidCallCounts {
  /** Rows per status (calls and the rows that are not calls). */
  byStatus: Partial<Record<Status, number>>
  /** Latest timestamp of a call row (pending, success, error, timeout). */
  lastCallAt: string | null
}

/**
 * What `agent` did with `provider` in the window: rows per status and the
 * last call. Without a model this reads indexes only, whatever the window:
 * an index-only count of every row (agent, provider, time), per-status
 * counts of the rare statuses from their partial index, the pending rows
 * from theirs; success is the rest. With a model each row in the range is
 * read once (one range read of the same index). The live database adds up
 * stored row counts for most of a long window instead (did-call-stored.ts).
 */
export function didCallCounts(db: Database, q: DidCallQuery): DidCallCounts {
  const grouped = didCallQueries(q)
  if ('total' in grouped) return didCallCountsWithTotal(db, grouped, (db.query(grouped.total.sql).get(grouped.total.params) as { n: number }).n)
  const byStatus: DidCallCounts['byStatus'] = {}
  for (const row of db.query(grouped.byStatus.sql).all(grouped.byStatus.params) as { status: Status; n: number }[]) byStatus[row.status] = row.n
  const last = db.query(grouped.lastCall.sql).get(grouped.lastCall.params) as { timestamp: string } | null
  return { byStatus, lastCallAt: last?.timestamp ?? null }
}

/**
 * The counts, given `total` (every row of the window, any status): the rare
 * statuses and the pending rows from their indexes, success the rest.
 */
export function didCallCountsWithTotal(db: Database, parts: DidCallParts, total: number): DidCallCounts {
  const byStatus: DidCallCounts['byStatus'] = {}
  let rest = total
  for (const row of db.query(parts.sparse.sql).all(parts.sparse.params) as { status: Status; n: number }[]) {
    byStatus[row.status] = row.n
    rest -= row.n
  }
  const pending = (db.query(parts.pending.sql).get(parts.pending.params) as { n: number }).n
  if (pending) byStatus.pending = pending
  if (rest - pending > 0) byStatus.success = rest - pending
  const last = db.query(parts.lastCall.sql).get(parts.lastCall.params) as { timestamp: string } | null
  return { byStatus, lastCallAt: last?.timestamp ?? null }
}

/** The queries of a did-call answered from a total: every row, the rare statuses, the pending rows, the last call. */
export interface DidCallParts {
  total: BoundQuery
  sparse: BoundQuery
  pending: BoundQuery
  lastCall: BoundQuery
}

/** The queries behind didCallCounts. */
export function didCallQueries(q: DidCallQuery): { byStatus: BoundQuery; lastCall: BoundQuery } | DidCallParts {
  const parts = didCallParts(q)
  if (q.model === undefined) return parts
  const params: Params = {}
  const terms = filterTerms(didCallFilter(q), params)
  return { byStatus: { sql: `SELECT l.status AS status, count(*) AS n FROM request_log l WHERE ${terms.join(' AND ')} GROUP BY l.status`, params }, lastCall: parts.lastCall }
}

/** The parts of a did-call, with the model (if any) checked per row of the index range. */
export function didCallParts(q: DidCallQuery): DidCallParts {
  const bound = (filter: RequestFilter, select: string, extra: string[] = [], tail = ''): BoundQuery => {
    const params: Params = {}
    const terms = [...filterTerms(filter, params), ...extra]
    return { sql: `SELECT ${select} FROM request_log l WHERE ${terms.join(' AND ')}${tail}`, params }
  }
  const filter = didCallFilter(q)
  return {
    total: bound(filter, 'count(*) AS n'),
    sparse: bound(filter, 'l.status AS status, count(*) AS n', [SPARSE_TERM], ' GROUP BY l.status'),
    pending: bound({ ...filter, status: 'pending' }, 'count(*) AS n'),
    lastCall: bound(filter, 'l.timestamp', [CALL_TERM], ' ORDER BY l.timestamp DESC LIMIT 1'),
  }
}

function didCallFilter(q: DidCallQuery): RequestFilter {
  return { agent: q.agent, provider: q.provider, model: q.model, since: q.since, until: q.until }
}

/** What the stats need of one row. */
export interface StatRow {
  id: number
  timestamp: string
  agent_name: string
  provider: string
  model: string
  status: Status
  latency_ms: number | null
  tokens_in: number | null
  tokens_out: number | null
  request_id: string | null
  chain: string | null
  seq: number | null
  cost_usd: number | null
}

/**
 * A page of the rows the stats fold: at most `limit` rows of [from, to)
 * with an id up to `uptoId`, strictly older than `before`, newest first
 * (timestamp, then id), with the meta the stats need. Each page is its own
 * short read: a caller walking a slice page by page holds no snapshot
 * between pages.
 */
export function statRowsPage(db: Database, from: string, to: string, uptoId: number, before: PageKey | null, limit: number): StatRow[] {
  // One upper bound on the timestamp each: given two, SQLite bounds the index walk by `to` and only
  // filters by the page's key, so every page walked again from the slice's end.
  if (!before) return db.query(STAT_ROWS_FIRST_PAGE_SQL).all({ $from: from, $to: to, $upto: uptoId, $limit: limit }) as StatRow[]
  return db.query(STAT_ROWS_NEXT_PAGE_SQL).all({ $from: from, $upto: uptoId, $ts: before.timestamp, $id: before.id, $limit: limit }) as StatRow[]
}

const STAT_ROWS_PAGE_SQL = (bound: string) => `SELECT l.id, l.timestamp, l.agent_name, l.provider, l.model, l.status, l.latency_ms, l.tokens_in, l.tokens_out,
         m.request_id, m.chain, m.seq, m.cost_usd
  FROM request_log l LEFT JOIN request_log_meta m ON m.log_id = l.id
  WHERE l.timestamp >= $from AND ${bound} AND l.id <= $upto
  ORDER BY l.timestamp DESC, l.id DESC
  LIMIT $limit`
const STAT_ROWS_FIRST_PAGE_SQL = STAT_ROWS_PAGE_SQL('l.timestamp < $to')
const STAT_ROWS_NEXT_PAGE_SQL = STAT_ROWS_PAGE_SQL('l.timestamp <= $ts AND (l.timestamp < $ts OR l.id < $id)')

/** The lowest and highest id in request_log (two b-tree end reads). */
export function idRange(db: Database): { lo: number | null; hi: number | null } {
  // Two subqueries: SQLite reads min() or max() alone from the b-tree's end, but not both in one.
  return db.query('SELECT (SELECT min(id) FROM request_log) AS lo, (SELECT max(id) FROM request_log) AS hi').get() as {
    lo: number | null
    hi: number | null
  }
}

/**
 * The id of the `n`th row after id `afterId` (ids need not be dense: a row
 * written with an id of its own can jump far ahead), or the highest id when
 * fewer rows follow; null when none does. A walk of the rowid b-tree.
 */
export function idAfterRows(db: Database, afterId: number, n: number): number | null {
  const nth = db.query('SELECT id FROM request_log WHERE id > $after ORDER BY id LIMIT 1 OFFSET $skip').get({ $after: afterId, $skip: n - 1 }) as { id: number } | null
  return nth?.id ?? idRange(db).hi
}

/** The oldest and newest timestamp in request_log (two reads of the time index's ends), or null when empty. */
export function timeSpan(db: Database): { first: string; last: string } | null {
  const span = db
    .query('SELECT (SELECT min(timestamp) FROM request_log) AS first, (SELECT max(timestamp) FROM request_log) AS last')
    .get() as { first: string | null; last: string | null }
  return span.first !== null && span.last !== null ? { first: span.first, last: span.last } : null
}

/**
 * The time of a timestamp as text compares: its epoch ms when it is canonical ISO-8601 (it would be
 * written back unchanged), else null. `2026-11-25 09:30:00` sorts before every `2026-11-25T…` but
 * parses as 09:30, `…+05:00` sorts last but parses earlier, `+010000-…` sorts first: an end of
 * timeSpan in such a form says nothing about where the other rows lie.
 */
export function canonicalMs(timestamp: string): number | null {
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(timestamp)) return null
  const ms = Date.parse(timestamp)
  return Number.isFinite(ms) && new Date(ms).toISOString() === timestamp ? ms : null
}

/**
 * SQL: whether a row's timestamp is canonical, one SQLite writes back unchanged. A pattern of digits
 * is not enough: `T24:00`, `T29:30` or `02-30` match one, name a slot that does not exist, and
 * compare as text into another.
 */
export const CANONICAL_TIMESTAMP = `strftime('%Y-%m-%dT%H:%M:%fZ', timestamp) IS timestamp`

/**
 * Whether the request has a call row (not a fallback) after position `seq`,
 * or, with `anyRow`, any row at all after it, among ids up to `uptoId`.
 */
export function hasLaterRow(db: Database, requestId: string, seq: number, anyRow: boolean, uptoId = Number.MAX_SAFE_INTEGER): boolean {
  const sql = anyRow
    ? 'SELECT 1 FROM request_log_meta m WHERE m.request_id = $request_id AND m.seq > $seq AND m.log_id <= $upto LIMIT 1'
    : `SELECT 1 FROM request_log_meta m JOIN request_log l ON l.id = m.log_id
       WHERE m.request_id = $request_id AND m.seq > $seq AND m.log_id <= $upto AND l.status <> 'fallback' LIMIT 1`
  return db.query(sql).get({ $request_id: requestId, $seq: seq, $upto: uptoId }) !== null
}

/** Whether the request has any call row (pending, success, error, timeout) at all, among ids up to `uptoId`. */
export function hasCallRow(db: Database, requestId: string, uptoId = Number.MAX_SAFE_INTEGER): boolean {
  return (
    db
      .query(
        `SELECT 1 FROM request_log_meta m JOIN request_log l ON l.id = m.log_id
         WHERE m.request_id = $request_id AND m.log_id <= $upto AND ${CALL_TERM} LIMIT 1`,
      )
      .get({ $request_id: requestId, $upto: uptoId }) !== null
  )
}
