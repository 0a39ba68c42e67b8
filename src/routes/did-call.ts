/** GET /requests/did-call?agent=X&provider=Y&since=1h: did the agent really call the provider? */
import type { Context } from 'hono'
import { readableAgent } from '../auth/middleware.ts'
import { parseDidCallInput } from '../query-input.ts'
import { didCall } from '../telemetry/did-call.ts'
import { readQuery } from './query-params.ts'
import type { ReadDeps } from './requests.ts'

export function didCallRoute(deps: ReadDeps) {
  return (c: Context) => {
    const query = parseDidCallInput(readQuery(c), deps.clock.now())
    readableAgent(c, query.agent)
    return c.json(didCall(deps.store.reader, query))
  }
}
