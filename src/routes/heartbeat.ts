/**
 * GET /heartbeat: 200 while the database takes writes, 503 with reasons
 * when it does not. A commit in the last second counts as proof; otherwise
 * a small state write is committed as a probe.
 */
import type { Context } from 'hono'
import type { Clock } from '../clock.ts'
import type { Store } from '../telemetry/store.ts'

export interface HeartbeatDeps {
  store: Store
  clock: Clock
}

const PROBE_BUDGET_MS = 1_000

export function heartbeatRoute(deps: HeartbeatDeps) {
  return async (c: Context) => {
    const reasons = await databaseReasons(deps)
    if (reasons.length) return c.json({ status: 'unhealthy', reasons }, 503)
    return c.json({ status: 'ok' })
  }
}

/** Why the database cannot be written right now (empty when it can). */
export async function databaseReasons(deps: HeartbeatDeps): Promise<string[]> {
  const { lastCommitAt } = deps.store.health()
  if (lastCommitAt !== null && Date.now() - lastCommitAt < 1_000) return []
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      deps.store.setState('heartbeat', new Date(deps.clock.now()).toISOString()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no commit within ${PROBE_BUDGET_MS} ms`)), PROBE_BUDGET_MS)
      }),
    ])
    return []
  } catch (error) {
    return [`database not writable: ${(error as Error).message}`]
  } finally {
    clearTimeout(timer)
  }
}
