/**
 * Promotion to last known good: once the running config has passed every
 * health check for `deadman.promote_after_s`, with at least one successful
 * call made on it, its bytes become the `<config>.last-good` snapshot. A
 * failed check, or a reload, starts the wait again.
 */
import type { Clock } from '../clock.ts'
import { readLastGood, promoteLastGood } from './last-good.ts'
import type { LiveConfig } from './live-config.ts'
import type { RuntimeState } from './runtime.ts'

export interface PromoterDeps {
  live: LiveConfig
  runtime: RuntimeState
  clock: Clock
  log: (message: string) => void
}

export class Promoter {
  private healthySince: number | null = null
  private lastGoodHash: string | null

  constructor(private readonly deps: PromoterDeps) {
    this.lastGoodHash = readLastGood(deps.live.path)?.hash ?? null
    deps.live.onSwap(() => {
      this.healthySince = null
    })
  }

  /** The hash of the last-known-good snapshot, null when there is none. */
  lastKnownGood(): string | null {
    return this.lastGoodHash
  }

  /** Feeds one health check's result; promotes when the config has earned it. Returns the new hash if it did. */
  observe(healthy: boolean): string | null {
    const { live, runtime, clock } = this.deps
    const now = clock.now()
    if (!healthy) {
      this.healthySince = null
      return null
    }
    this.healthySince ??= now
    const config = live.current()
    if (config.hash === this.lastGoodHash) return null
    const waitedMs = now - this.healthySince
    const servedOnIt = runtime.lastSuccessAt !== null && runtime.lastSuccessAt >= live.loadedAt
    if (waitedMs < config.deadman.promote_after_s * 1000 || !servedOnIt) return null
    try {
      const snapshot = promoteLastGood(live.path, live.currentBytes())
      this.lastGoodHash = snapshot.hash
      this.deps.log(`promoted config sha256 ${snapshot.hash} to last known good (${snapshot.path})`)
      return snapshot.hash
    } catch (error) {
      this.deps.log(`could not save the last-known-good snapshot: ${(error as Error).message}`)
      return null
    }
  }
}
