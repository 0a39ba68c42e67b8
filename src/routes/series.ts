/** GET /stats/series?since=&until=&bucket=: attempts per bucket by status, latency percentiles per provider (operator token). */
import type { Context } from 'hono'
import { parseSeriesInput } from '../query-input.ts'
import { timeSeries } from '../telemetry/series.ts'
import { readQuery } from './query-params.ts'
import type { ReadDeps } from './requests.ts'

export function seriesRoute(deps: ReadDeps) {
  return async (c: Context) => {
    const nowMs = deps.clock.now()
    const query = parseSeriesInput(readQuery(c), nowMs)
    return c.json(await timeSeries(deps.store.reader, query, { nowMs, cache: deps.statsCache, rollups: deps.rollups }))
  }
}
