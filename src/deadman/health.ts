/**
 * The router's own health, as GET /heartbeat and the promotion check see
 * it: unhealthy when the database cannot be written, when calls are stuck
 * past every timeout their chain allows, or when every chain called has
 * failed, without a success, for `deadman.failing_window_s`.
 */
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import type { Store } from '../telemetry/store.ts'
import type { RuntimeState } from './runtime.ts'

export interface HealthDeps {
  store: Store
  clock: Clock
  runtime: RuntimeState
  config: () => Config
}

/** How long a health probe waits for its commit. */
const PROBE_BUDGET_MS = 1_000

export interface Health {
  /** Why the router is unhealthy right now (empty when it is healthy). */
  reasons: string[]
  /**
   * Whether its config may be the cause (calls stuck, chains failing), so
   * that a rollback may cure it; false when only the database is unhealthy (locked, full,
   * read-only): a rollback cures that only if it changes the database settings, which the watchdog,
   * holding both configs, checks.
   */
  rollbackMayHelp: boolean
}

export async function healthOf(deps: HealthDeps): Promise<Health> {
  const database = await databaseReasons(deps)
  const reasons: string[] = []
  const stuck = deps.runtime.stuck()
  if (stuck.length) {
    const oldest = stuck[0]!
    reasons.push(`${stuck.length} call(s) stuck past their timeouts (oldest: chain ${oldest.chain}, running ${Math.round(oldest.runningMs / 1000)} s)`)
  }
  const windowS = deps.config().deadman.failing_window_s
  const failing = deps.runtime.allChainsFailing(windowS * 1000)
  if (failing) {
    reasons.push(`every chain called has failed for ${Math.round(failing.sinceMs / 1000)} s without a success (${failing.chains.join(', ')}; window ${windowS} s)`)
  }
  return { reasons: [...database, ...reasons], rollbackMayHelp: reasons.length > 0 }
}

/**
 * Why the database cannot take a new row right now (empty when it can). A
 * new row committed in the last second, with no failure since, counts as
 * proof; otherwise a probe row is inserted and rolled back (an update, such
 * as a state write, may succeed in a database too full for a new row).
 */
async function databaseReasons(deps: { store: Store }): Promise<string[]> {
  const held = heldFinishes(deps.store)
  const { lastCommitAt, lastError } = deps.store.health()
  if (lastError === null && lastCommitAt !== null && Date.now() - lastCommitAt < 1_000) return held
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    await Promise.race([
      deps.store.probe(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no commit within ${PROBE_BUDGET_MS} ms`)), PROBE_BUDGET_MS)
      }),
    ])
    return held
  } catch (error) {
    return [`database not writable: ${(error as Error).message}`, ...held]
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Calls made whose rows could not be finished (their finishing write refused: the database locked
 * past its budget, or full), held in memory and tried again each second: until they land, their
 * outcome is in this process alone, and a restart would record them as cut short.
 */
function heldFinishes(store: Store): string[] {
  const n = store.deferredCount()
  return n > 0 ? [`${n} call(s) made whose row could not be finished yet (its finishing write was refused; tried again each second)`] : []
}
