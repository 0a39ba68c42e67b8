/** `witness query --agent X --provider Y --since 1h [--status S] [--json]`: rows from the database, newest first. */
import { parseArgs } from 'node:util'
import { formatTable } from '../format/table.ts'
import { DEFAULT_LIMIT, encodeCursor, parseListInput } from '../query-input.ts'
import { withSources } from '../retention/read-sources.ts'
import { listAcross } from '../telemetry/across.ts'
import { pageOf } from '../telemetry/queries.ts'
import { type Command, parsed } from './args.ts'
import { READ_OPTIONS, given, parseFlags, openForReading } from './read-db.ts'

const FILTERS = ['agent', 'provider', 'model', 'status', 'chain', 'request_id', 'since', 'until', 'limit', 'cursor'] as const
const TABLE_COLUMNS = ['id', 'timestamp', 'agent_name', 'provider', 'model', 'status', 'tokens_in', 'tokens_out', 'latency_ms', 'error_message']

export const queryCommand: Command = {
  summary:
    'query [--agent A] [--provider P] [--model M] [--status S] [--chain C] [--request-id R] [--since T] [--until T] [--limit N] [--cursor C] [--json] [--config PATH] [--db PATH] [--archives [--archive-dir DIR]]\n' +
    '                                                 rows from request_log, newest first: a table, or JSON lines with --json; --archives searches the archive files of the period too',
  async run(args) {
    const text = { type: 'string' } as const
    const options = {
      ...READ_OPTIONS,
      json: { type: 'boolean' },
      agent: text,
      provider: text,
      model: text,
      status: text,
      chain: text,
      'request-id': text,
      since: text,
      until: text,
      limit: text,
      cursor: text,
    } as const
    const { values } = parsed(() => parseArgs({ args, options }))
    const input = parseFlags(() => parseListInput(given(values, FILTERS), Date.now()))
    const target = openForReading(values)
    try {
      const limit = input.limit ?? DEFAULT_LIMIT
      const page = await withSources(() => target.sources(input.archives, { ...input.filter, before: input.before }), (sources) =>
        pageOf(listAcross(sources.sources, input.filter, limit + 1, input.before), limit),
      )
      if (values.json) for (const row of page.rows) console.log(JSON.stringify(row))
      else console.log(page.rows.length ? formatTable(page.rows as unknown as Record<string, unknown>[], TABLE_COLUMNS) : '(no rows)')
      if (page.next) console.error(`witness: more rows: add --cursor ${encodeCursor(page.next)}`)
      return 0
    } finally {
      target.close()
    }
  },
}
