/**
 * Promotion to last known good: once the running config has passed every
 * health check for `deadman.promote_after_s`, with at least one successful
 * call made on it, its bytes become the `<config>.last-good` snapshot. A
 * failed check, or a reload, starts the wait again.
 */
import { statSync } from 'node:fs'
import type { Clock } from '../clock.ts'
import { lastGoodPath, promoteLastGood, readLastGood } from './last-good.ts'
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
  /** The snapshot's hash, re-read when the file changes (an operator or another tool may write it). */
  private cached: { stamp: string; hash: string | null } = { stamp: '', hash: null }

  constructor(private readonly deps: PromoterDeps) {
    deps.live.onSwap(() => {
      this.healthySince = null
    })
  }

  /** The hash of the last-known-good snapshot, null when there is none. */
  lastKnownGood(): string | null {
    const path = lastGoodPath(this.deps.live.path)
    let stamp = 'none'
    try {
      const stat = statSync(path)
      stamp = `${stat.mtimeMs}:${stat.size}:${stat.ino}`
    } catch {
      // no snapshot
    }
    if (stamp !== this.cached.stamp) this.cached = { stamp, hash: stamp === 'none' ? null : (readLastGood(this.deps.live.path)?.hash ?? null) }
    return this.cached.hash
  }

  /** Feeds one health check's result; promotes when the config has earned it. Returns the new hash if it did. */
  observe(healthy: boolean): string | null {
    const { live, runtime, clock } = this.deps
    // Monotonic: a wall clock stepped ahead must not shorten the wait.
    const now = clock.monotonic()
    if (!healthy) {
      this.healthySince = null
      return null
    }
    this.healthySince ??= now
    const config = live.current()
    if (config.hash === this.lastKnownGood()) return null
    const waitedMs = now - this.healthySince
    // A call that started on the config before a reload and succeeded after it does not count.
    const servedOnIt = runtime.servedOn(config.hash)
    if (waitedMs < config.deadman.promote_after_s * 1000 || !servedOnIt) return null
    try {
      const snapshot = promoteLastGood(live.path, live.currentBytes())
      this.deps.log(`promoted config sha256 ${snapshot.hash} to last known good (${snapshot.path})`)
      return snapshot.hash
    } catch (error) {
      this.deps.log(`could not save the last-known-good snapshot: ${(error as Error).message}`)
      return null
    }
  }
}
