/** GET /stats/fallbacks?since=&until=: how often requests left each provider, and for which (operator token). */
import type { Context } from 'hono'
import { parseSpanInput } from '../query-input.ts'
import { fallbackCounts } from '../telemetry/fallbacks.ts'
import { readQuery } from './query-params.ts'
import type { ReadDeps } from './requests.ts'

export function fallbacksRoute(deps: Pick<ReadDeps, 'store' | 'clock'>) {
  return async (c: Context) => {
    const { since, until } = parseSpanInput(readQuery(c), deps.clock.now())
    return c.json({ since, until, fallbacks: await fallbackCounts(deps.store.reader, since, until) })
  }
}
