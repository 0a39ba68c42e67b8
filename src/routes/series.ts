/** GET /stats/series?since=&until=&bucket=: attempts per bucket by status, latency percentiles per provider (operator token; the archives too where the window reaches them, or with `archives=1`). */
import type { Context } from 'hono'
import { parseSeriesInput } from '../query-input.ts'
import { timeSeries } from '../telemetry/series.ts'
import { readQuery } from './query-params.ts'
import { withSources } from '../retention/read-sources.ts'
import { type ReadDeps, readSources } from '../read-deps.ts'

export function seriesRoute(deps: ReadDeps) {
  return async (c: Context) => {
    const nowMs = deps.clock.now()
    const query = parseSeriesInput(readQuery(c), nowMs)
    return c.json(await withSources(() => readSources(deps, query.archives, query, true), ({ dbs }) => timeSeries(dbs, query, { nowMs, cache: deps.statsCache, rollups: deps.rollups })))
  }
}
