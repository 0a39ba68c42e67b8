/**
 * GET /requests (a filtered page, newest first, or the whole selection as
 * NDJSON or CSV) and GET /requests/:id (a row and every row of its
 * request). An agent token reads only its own rows.
 */
import type { Context } from 'hono'
import { proofOf } from '../proof/lookup.ts'
import { readableAgent } from '../auth/middleware.ts'
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import { InvalidRequestError, NotFoundError } from '../errors.ts'
import { csvLine } from '../format/csv.ts'
import { DEFAULT_LIMIT, type ExportFormat, encodeCursor, parseListInput } from '../query-input.ts'
import { LOG_COLUMNS, type LogRow, type PageKey, type RequestFilter, listRequests, pageOf, requestRow, requestStory, walkRequests } from '../telemetry/queries.ts'
import type { StatsCache } from '../telemetry/stats-window.ts'
import type { Store } from '../telemetry/store.ts'
import { readQuery } from './query-params.ts'

/** What the read endpoints need: the store's read-only connection, the clock, the live config. */
export interface ReadDeps {
  store: Store
  clock: Clock
  config: () => Config
  statsCache: StatsCache
}

export function listRequestsRoute(deps: ReadDeps) {
  return (c: Context) => {
    const input = parseListInput(readQuery(c), deps.clock.now())
    const filter = { ...input.filter, agent: readableAgent(c, input.filter.agent) }
    if (input.format !== 'json') return exportResponse(deps, filter, input.before, input.limit, input.format)
    const limit = input.limit ?? DEFAULT_LIMIT
    const page = pageOf(listRequests(deps.store.reader, filter, limit + 1, input.before), limit)
    return c.json({ rows: page.rows, next_cursor: page.next ? encodeCursor(page.next) : null })
  }
}

const CONTENT_TYPES: Record<Exclude<ExportFormat, 'json'>, string> = {
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
}

/** Streams the selection a page at a time, so an export of millions of rows holds no more than a page. */
function exportResponse(deps: ReadDeps, filter: RequestFilter, before: PageKey | undefined, max: number | undefined, format: 'ndjson' | 'csv'): Response {
  const encoder = new TextEncoder()
  const pages = walkRequests(deps.store.reader, filter, before, max)
  const line = (row: LogRow) => (format === 'csv' ? csvLine(LOG_COLUMNS.map((c) => row[c])) : `${JSON.stringify(row)}\n`)
  let header = format === 'csv' ? csvLine(LOG_COLUMNS) : ''
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      const next = pages.next()
      const text = header + (next.done ? '' : next.value.map(line).join(''))
      header = ''
      if (text) controller.enqueue(encoder.encode(text))
      if (next.done) controller.close()
    },
    cancel() {
      pages.return(undefined)
    },
  })
  return new Response(body, { headers: { 'content-type': CONTENT_TYPES[format] } })
}

export function requestStoryRoute(deps: ReadDeps) {
  return (c: Context) => {
    const text = c.req.param('id') ?? ''
    if (!/^[1-9]\d{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new InvalidRequestError(`invalid row id "${text.slice(0, 40)}": must be a positive whole number`, [{ path: 'id', message: 'must be a positive whole number' }])
    }
    const extra = Object.keys(readQuery(c))
    if (extra.length) throw new InvalidRequestError(`/requests/:id takes no parameters: ${extra.join(', ')}`, extra.map((path) => ({ path, message: 'is not a parameter of this query' })))
    const id = Number(text)
    const row = requestRow(deps.store.reader, id)
    if (!row) throw new NotFoundError(`no row with id ${id}`)
    readableAgent(c, row.agent_name)
    return c.json({ row, proof: proofOf(deps.store.reader, id), request: requestStory(deps.store.reader, id) })
  }
}
