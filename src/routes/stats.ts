/** GET /stats?since=24h&by=provider: the provider comparison (an agent token sees its own rows only; `archives=1`: the archives too). */
import type { Context } from 'hono'
import { readableAgent } from '../auth/middleware.ts'
import { parseStatsInput } from '../query-input.ts'
import { computeStats, statsReadPeriod } from '../telemetry/stats-window.ts'
import { withSources } from '../retention/read-sources.ts'
import { readQuery } from './query-params.ts'
import { type ReadDeps, readSources } from '../read-deps.ts'

export function statsRoute(deps: ReadDeps) {
  return async (c: Context) => {
    const nowMs = deps.clock.now()
    const query = parseStatsInput(readQuery(c), nowMs)
    const agent = readableAgent(c, query.agent)
    const result = await withSources(() => readSources(deps, query.archives, statsReadPeriod(query), true), ({ dbs }) =>
      computeStats(dbs, { ...query, agent }, { pricing: deps.config().pricing, nowMs, cache: deps.statsCache, rollups: deps.rollups }),
    )
    return c.json({ since: query.since, until: query.until, by: result.by, ...(agent !== undefined ? { agent } : {}), groups: result.groups, rankings: result.rankings })
  }
}
