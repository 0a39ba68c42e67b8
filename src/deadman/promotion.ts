/**
 * Promotion to last known good: once the running config has passed every
 * health check for `deadman.promote_after_s`, with at least one successful
 * call made on it, its bytes become the `<config>.last-good` snapshot. A
 * failed check, or a reload, starts the wait again. Never promoted: a config
 * whose `listen` or database settings wait for a restart (it has not run on
 * them, so they proved nothing), and one without `auth` while the snapshot
 * has it (a restart onto a file that lost its auth block would otherwise
 * make the open config the one every later rollback restores).
 */
import { statSync } from 'node:fs'
import type { Clock } from '../clock.ts'
import { parseConfigText } from '../config-file.ts'
import { lastGoodPath, promoteLastGood, readLastGood, snapshotProblem } from './last-good.ts'
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
  private cached: { stamp: string; hash: string | null; recorded: string | null; hasAuth: boolean } = { stamp: '', hash: null, recorded: null, hasAuth: false }
  /** The config hash a refusal to promote was last logged for, and why: said once per config. */
  private refused: string | null = null

  constructor(private readonly deps: PromoterDeps) {
    deps.live.onSwap(() => {
      this.healthySince = null
    })
  }

  /**
   * The hash of the last-known-good snapshot, null when there is none, or when it does not match
   * its `.sha256` (a crash between the two renames of a promotion, a hand edit): the watchdog
   * refuses to restore such a pair, so the next promotion writes both again.
   */
  lastKnownGood(): string | null {
    return this.read().hash
  }

  /**
   * Whether a config has proven itself: it is the last known good, or the one a promotion recorded
   * (`.sha256`) when the snapshot no longer matches it (changed or damaged since): the config
   * passed its checks all the same, and the next promotion writes a good pair again.
   */
  proven(hash: string): boolean {
    const { hash: good, recorded } = this.read()
    return hash === good || hash === recorded
  }

  private read(): { hash: string | null; recorded: string | null; hasAuth: boolean } {
    const path = lastGoodPath(this.deps.live.path)
    const stamp = [path, `${path}.sha256`].map(stampOf).join('/')
    if (stamp !== this.cached.stamp) {
      let snapshot: ReturnType<typeof readLastGood> = null
      try {
        snapshot = readLastGood(this.deps.live.path)
      } catch (error) {
        // Unreadable (a directory there, no permission): there is no last known good, as with none. Said
        // once per change of the file; GET /heartbeat and GET /deadman still answer for the router itself.
        this.deps.log(`the last-known-good snapshot ${path} cannot be read, so no config is the last known good: ${(error as Error).message}`)
      }
      const good = snapshot && snapshotProblem(snapshot) === null ? snapshot : null
      this.cached = { stamp, hash: good?.hash ?? null, recorded: snapshot?.recordedHash ?? null, hasAuth: good !== null && snapshotHasAuth(good.bytes, good.path) }
    }
    return this.cached
  }

  /** Why the running config, healthy, is not to be promoted; null when it may be. */
  private unpromotable(): string | null {
    const { live } = this.deps
    const pending = live.pendingRestart()
    if (pending.length) return `its ${pending.join(', ')} ${pending.length === 1 ? 'waits' : 'wait'} for a restart, so it has not run on ${pending.length === 1 ? 'it' : 'them'} (promoted once a start on it has proven it)`
    if (live.current().auth === null && this.read().hasAuth) {
      return 'it has no auth and the last known good has: witness runs open, and the snapshot, which every rollback restores, keeps its auth (put auth back; to run open from now on, remove the snapshot, and the next healthy config is promoted)'
    }
    return null
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
    const why = this.unpromotable()
    if (why) {
      const said = `${config.hash}: ${why}`
      if (this.refused !== said) this.deps.log(`not promoting config sha256 ${config.hash} to last known good: ${why}`)
      this.refused = said
      return null
    }
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

/** Whether a snapshot's config has `auth` (one that no longer parses counts as without). */
function snapshotHasAuth(bytes: Uint8Array, path: string): boolean {
  try {
    return parseConfigText(bytes, path).auth !== null
  } catch {
    return false
  }
}

/** What tells a file's versions apart: 'none' when it does not exist. */
function stampOf(path: string): string {
  try {
    const stat = statSync(path)
    return `${stat.mtimeMs}:${stat.size}:${stat.ino}`
  } catch {
    return 'none'
  }
}
