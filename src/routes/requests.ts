/**
 * GET /requests (a filtered page, newest first, or the whole selection as
 * NDJSON or CSV) and GET /requests/:id (a row and every row of its
 * request). An agent token reads only its own rows. With `archives=1` the
 * archive files of the period are searched too (see read-sources.ts).
 */
import type { Context } from 'hono'
import { proofOf } from '../proof/lookup.ts'
import { readableAgent } from '../auth/middleware.ts'
import { InvalidRequestError, NotFoundError, WitnessError, internalError } from '../errors.ts'
import { csvLine } from '../format/csv.ts'
import { DEFAULT_LIMIT, type ExportFormat, encodeCursor, parseListInput, parseStoryInput } from '../query-input.ts'
import { type ReadSources, pagesAcross, withSources } from '../retention/read-sources.ts'
import { listAcross, storyAcross } from '../telemetry/across.ts'
import { LOG_COLUMNS, type LogRow, type PageKey, type RequestFilter, pageOf } from '../telemetry/queries.ts'
import { type ReadDeps, readSources } from '../read-deps.ts'
import { shapeError } from './error-shapes.ts'
import { readQuery } from './query-params.ts'

export function listRequestsRoute(deps: ReadDeps) {
  return async (c: Context) => {
    const input = parseListInput(readQuery(c), deps.clock.now())
    const filter = { ...input.filter, agent: readableAgent(c, input.filter.agent) }
    const open = () => readSources(deps, input.archives, { ...filter, before: input.before })
    // Opened here, so a read that cannot search the archives it needs is a 503, not a stream cut short.
    if (input.format !== 'json') {
      // Past its first page, an unforeseen failure is logged as app.onError logs one; the client gets its line.
      const unforeseen = (error: unknown) => deps.warn(`unhandled error on ${c.req.method} ${c.req.path} (an export, cut short): ${(error as Error)?.stack ?? String(error)}`)
      return await exportResponse(await open(), open, filter, input.before, input.limit, input.format, unforeseen)
    }
    const limit = input.limit ?? DEFAULT_LIMIT
    const page = await withSources(open, (sources) => pageOf(listAcross(sources.sources, filter, limit + 1, input.before), limit))
    return c.json({ rows: page.rows, next_cursor: page.next ? encodeCursor(page.next) : null })
  }
}

const CONTENT_TYPES: Record<Exclude<ExportFormat, 'json'>, string> = {
  ndjson: 'application/x-ndjson; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
}

/**
 * Streams the selection a page at a time, so an export of millions of rows
 * holds no more than a page and the event loop is given back between pages.
 * A page read while the archive job began a month file is read again over
 * sources opened anew (pagesAcross). The sources are closed when the stream
 * ends or the client goes away. The first page is read before answering, so
 * a read that fails at once (a damaged archive) is its error status.
 */
async function exportResponse(
  sources: ReadSources,
  open: () => Promise<ReadSources>,
  filter: RequestFilter,
  before: PageKey | undefined,
  max: number | undefined,
  format: 'ndjson' | 'csv',
  unforeseen: (error: unknown) => void,
): Promise<Response> {
  const encoder = new TextEncoder()
  const pages = pagesAcross(sources, open, filter, before, max)
  const line = (row: LogRow) => (format === 'csv' ? csvLine(LOG_COLUMNS.map((c) => row[c])) : `${JSON.stringify(row)}\n`)
  let header = format === 'csv' ? csvLine(LOG_COLUMNS) : ''
  const finish = async () => {
    await pages.return(undefined)
    // Not closed by a return before the first page (a generator not yet started runs no finally).
    sources.close()
  }
  let first: IteratorResult<LogRow[]> | null
  try {
    first = await pages.next()
  } catch (error) {
    await finish()
    throw error
  }
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: IteratorResult<LogRow[]>
      try {
        next = first ?? (await pages.next())
        first = null
      } catch (error) {
        // A failure after the answer began ends it with a line saying why, never a row: cutting the
        // transfer instead makes Bun reset the connection, and the client loses rows already sent.
        await finish()
        if (!(error instanceof WitnessError)) unforeseen(error)
        controller.enqueue(encoder.encode(cutShort(format, error instanceof WitnessError ? error : internalError())))
        controller.close()
        return
      }
      const text = header + (next.done ? '' : next.value.map(line).join(''))
      header = ''
      if (text) controller.enqueue(encoder.encode(text))
      if (next.done) {
        await finish()
        controller.close()
      }
    },
    cancel: finish,
  })
  return new Response(body, { headers: { 'content-type': CONTENT_TYPES[format] } })
}

/**
 * The last line of an export cut short: in NDJSON the error object the endpoint answers with (no row
 * has an `error` key); in CSV `#error`, its type and message (three fields, where rows have eleven).
 */
function cutShort(format: 'ndjson' | 'csv', error: WitnessError): string {
  return format === 'csv' ? csvLine(['#error', error.type, error.message]) : `${JSON.stringify(shapeError('witness', error))}\n`
}

export function requestStoryRoute(deps: ReadDeps) {
  return async (c: Context) => {
    const text = c.req.param('id') ?? ''
    if (!/^[1-9]\d{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new InvalidRequestError(`invalid row id "${text.slice(0, 40)}": must be a positive whole number`, [{ path: 'id', message: 'must be a positive whole number' }])
    }
    const { archives } = parseStoryInput(readQuery(c))
    const id = Number(text)
    // The id says nothing of its month: with archives, every archive file is looked in (one primary-key lookup each).
    // Another agent's row is not there for an agent token: a 403 would tell it that the row exists, and whose it is.
    const own = readableAgent(c, undefined)
    const found = await withSources(() => readSources(deps, archives), (sources) => {
      const story = storyAcross(sources.dbs, id, own)
      // Checkpoints stay in the live database; the row's chain entry is wherever the row is.
      return story && { ...story, proof: proofOf(sources.dbs, id, deps.store.reader) }
    })
    if (!found) {
      throw new NotFoundError(`no row with id ${id}${own !== undefined ? ` of agent "${own}"` : ''}${archives ? ' in the live database or the archives' : ''}`)
    }
    return c.json(found)
  }
}
