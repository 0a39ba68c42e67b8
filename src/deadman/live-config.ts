/**
 * The live config: owns the config the router runs and swaps it atomically
 * on reload (SIGHUP, POST /admin/reload) only when the file validates. An
 * invalid file is refused with every problem listed and the running config
 * stays. Requests capture the config once (router/dispatch.ts), so calls in
 * flight finish on the chains they started with.
 */
import type { Clock } from '../clock.ts'
import { type Config, openListenProblem } from '../config.ts'
import { parseConfigText, readConfigBytes } from '../config-file.ts'
import { ConfigError, ReloadRefusedError } from '../errors.ts'
import { readLastGood, snapshotProblem } from './last-good.ts'

export interface ReloadResult {
  status: 'reloaded' | 'unchanged'
  configHash: string
  previousConfigHash: string
  /** Settings that changed but only take effect when witness restarts. */
  restartRequired: string[]
}

export class LiveConfig {
  private config: Config
  private bytes: Uint8Array
  /** Wall time (ms) the running config was loaded. */
  loadedAt: number
  private readonly boot: Config
  private readonly listeners: ((next: Config, previous: Config) => void)[] = []

  /** Loads `path` (a ConfigError stops start-up). */
  constructor(
    readonly path: string,
    private readonly clock: Clock,
  ) {
    this.bytes = readConfigBytes(path)
    this.config = parseConfigText(this.bytes, path)
    this.boot = this.config
    this.loadedAt = clock.now()
  }

  current(): Config {
    return this.config
  }

  /** The bytes the running config was parsed from (what a promotion snapshots). */
  currentBytes(): Uint8Array {
    return this.bytes
  }

  /**
   * The address the socket is bound to (a reload cannot move it): a config without `auth` is never
   * taken while it is not a loopback address.
   */
  boundHost: string | null = null

  /**
   * Why `next`, which has no `auth`, must not replace a running config that has it (null: it may).
   * Tokens come and go by reload, but not `auth` itself: a file caught half-written (its auth block
   * not there yet) would open witness without a word. Only the last-known-good snapshot may, and
   * only on loopback: a rollback to a config that ran open and proved itself (the watchdog's).
   */
  private openingProblem(next: Config): string | null {
    const host = this.boundHost ?? next.raw.listen.host
    if (openListenProblem(host, false)) {
      return `witness listens on ${JSON.stringify(host)}, which is not a loopback address, and a reload cannot move the socket: without auth, any client could read every row and write rows under any agent's name there; keep auth`
    }
    const snapshot = readLastGood(this.path)
    if (snapshot && snapshot.hash === next.hash && snapshotProblem(snapshot) === null) return null
    return 'the running config has auth and this one has none: a reload does not open witness (any client could then read every row and write rows under any agent\'s name) unless the file is the last known good (a rollback); restart witness to run it open, on a loopback address only'
  }

  /** Settings of the running config that wait for a restart (it runs on the boot config's for them). */
  pendingRestart(): string[] {
    return restartRequired(this.boot, this.config)
  }

  /** Calls `listener` after every swap. */
  onSwap(listener: (next: Config, previous: Config) => void): void {
    this.listeners.push(listener)
  }

  /** Re-reads the file; swaps it in if valid, throws ReloadRefusedError if not. */
  reload(): ReloadResult {
    const previous = this.config
    let bytes: Uint8Array
    let next: Config
    try {
      bytes = readConfigBytes(this.path)
      next = parseConfigText(bytes, this.path)
    } catch (error) {
      if (error instanceof ConfigError) throw new ReloadRefusedError(error, previous.hash)
      throw error
    }
    const open = previous.auth !== null && next.auth === null ? this.openingProblem(next) : null
    if (open) throw new ReloadRefusedError(new ConfigError(this.path, [{ path: 'auth', message: open }]), previous.hash)
    if (next.hash === previous.hash) {
      // Unchanged since the last reload, maybe not since the start: what still waits for a restart is said again.
      return { status: 'unchanged', configHash: next.hash, previousConfigHash: previous.hash, restartRequired: restartRequired(this.boot, next) }
    }
    this.config = next
    this.bytes = bytes
    this.loadedAt = this.clock.now()
    for (const listener of this.listeners) listener(next, previous)
    return { status: 'reloaded', configHash: next.hash, previousConfigHash: previous.hash, restartRequired: restartRequired(this.boot, next) }
  }
}

/** Settings fixed when witness started (the socket, the database) that differ in `next`. */
export function restartRequired(boot: Config, next: Config): string[] {
  const fixed = ['listen', 'database_sync', 'database_busy_timeout_ms', 'database_max_mb', 'database_writer', 'database_fsync'] as const
  const out: string[] = fixed.filter((key) => JSON.stringify(boot.raw[key]) !== JSON.stringify(next.raw[key]))
  if (boot.databasePath !== next.databasePath) out.push('database')
  if (boot.proof.keyPath !== next.proof.keyPath) out.push('proof.key_path')
  return out.sort()
}
