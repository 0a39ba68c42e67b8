/** GET /requests/did-call?agent=X&provider=Y&since=1h: did the agent really call the provider? (`archives=1`: the archives too) */
import type { Context } from 'hono'
import { principalOf, readableAgent } from '../auth/middleware.ts'
import { parseDidCallInput } from '../query-input.ts'
import { didCall } from '../telemetry/did-call.ts'
import { deletedMonthsIn, withSources } from '../retention/read-sources.ts'
import { readQuery } from './query-params.ts'
import { type ReadDeps, readSources } from '../read-deps.ts'

export function didCallRoute(deps: ReadDeps) {
  return async (c: Context) => {
    // An agent's token reads its own calls, named or not (any other agent is refused below).
    const own = readableAgent(c, undefined)
    const query = parseDidCallInput(readQuery(c), deps.clock.now(), own)
    readableAgent(c, query.agent)
    // An agent's token is told of its own rows alone, `never_seen` included.
    const ownRows = principalOf(c).kind === 'agent'
    return c.json(await withSources(() => readSources(deps, query.archives, query, true), (sources) => didCall(sources.live, query, sources.archives, ownRows, deletedMonthsIn(sources.live, query))))
  }
}
