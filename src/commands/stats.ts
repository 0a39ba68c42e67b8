/** `witness stats --since 24h --by provider [--json]`: the provider comparison as a table. */
import { parseArgs } from 'node:util'
import { formatTable } from '../format/table.ts'
import { parseStatsInput } from '../query-input.ts'
import { withSources } from '../retention/read-sources.ts'
import { type RankEntry, type StatsResult, reliabilityRates } from '../telemetry/stats.ts'
import { SliceRollups } from '../telemetry/slice-rollups.ts'
import { computeStats, statsReadPeriod } from '../telemetry/stats-window.ts'
import { type Command, UsageError, parsed } from './args.ts'
import { READ_OPTIONS, given, parseFlags, openForReading } from './read-db.ts'

const COLUMNS = ['attempts', 'success', 'error', 'timeout', 'success_rate', 'requests', 'request_success_rate', 'p50_ms', 'p95_ms', 'p99_ms', 'tokens_in', 'tokens_out', 'cost_usd']

export const statsCommand: Command = {
  summary:
    'stats [--since T] [--until T] [--by provider|model|agent|chain] [--agent A] [--json] [--config PATH] [--db PATH] [--archives [--archive-dir DIR]]\n' +
    '                                                 attempts, success rates, latency percentiles, tokens and cost per group',
  async run(args) {
    const options = { ...READ_OPTIONS, json: { type: 'boolean' }, since: { type: 'string' }, until: { type: 'string' }, by: { type: 'string' }, agent: { type: 'string' } } as const
    const { values } = parsed(() => parseArgs({ args, options }))
    const nowMs = Date.now()
    const query = parseFlags(() => parseStatsInput(given(values, ['since', 'until', 'by', 'agent']), nowMs))
    const target = openForReading(values)
    try {
      // A file of the specified table alone (a log from before witness): the stats group rows by request.
      if (!target.db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'request_log_meta'").get()) {
        throw new UsageError(
          'this database holds request_log alone, without witness\'s own tables (request_log_meta: which rows make one request), so there are no stats to compute; `witness query` and `witness did-call` read it, and `witness init --db PATH` adds the tables (its rows stay as they are)',
          { showUsage: false },
        )
      }
      // The slices the server stored in the live file are read, never written (the file is open read-only).
      const rollups = new SliceRollups(target.db)
      const result = await withSources(() => target.sources(query.archives, statsReadPeriod(query), true), (sources) =>
        computeStats(sources.dbs, query, { pricing: target.config?.pricing ?? {}, nowMs, rollups }),
      )
      if (values.json) console.log(JSON.stringify({ since: query.since, until: query.until, by: result.by, groups: result.groups, rankings: result.rankings }))
      else console.log(render(result, query.since, query.until))
      return 0
    } finally {
      target.close()
    }
  },
}

function render(result: StatsResult, since: string, until: string): string {
  const by = result.by
  const head = `${since} .. ${until}, by ${by}`
  if (!result.groups.length) return `${head}: no rows`
  const ranking = (title: string, entries: RankEntry[]) =>
    `${title.padEnd(36)}${entries.map((e) => `${e[by] ?? '-'} ${Number(e.value.toFixed(6))}`).join(', ') || '-'}`
  return [
    head,
    '',
    formatTable(result.groups, [by, ...COLUMNS]),
    '',
    ranking('fastest (p50 ms):', result.rankings.fastest),
    ranking(`most reliable (${reliabilityRates(by)[0] === 'success_rate' ? 'attempt' : 'request'} success):`, result.rankings.most_reliable),
    ranking('cheapest (USD per million tokens):', result.rankings.cheapest),
  ].join('\n')
}
