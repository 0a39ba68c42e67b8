/** GET /stats/fallbacks?since=&until=: how often requests left each provider, and for which (operator token; the archives too where the window reaches them, or with `archives=1`). */
import type { Context } from 'hono'
import { parseSpanInput } from '../query-input.ts'
import { fallbackCounts } from '../telemetry/fallbacks.ts'
import { readQuery } from './query-params.ts'
import { withSources } from '../retention/read-sources.ts'
import { type ReadDeps, readSources } from '../read-deps.ts'

export function fallbacksRoute(deps: Pick<ReadDeps, 'store' | 'clock' | 'config'>) {
  return async (c: Context) => {
    const { since, until, archives } = parseSpanInput(readQuery(c), deps.clock.now())
    return c.json({ since, until, fallbacks: await withSources(() => readSources(deps, archives, { since, until }, true), ({ dbs }) => fallbackCounts(dbs, since, until)) })
  }
}
