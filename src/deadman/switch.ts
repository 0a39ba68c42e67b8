/**
 * The deadman switch inside the router: the live config and its reloads,
 * the health report behind GET /heartbeat, promotion to last known good,
 * and the agents' silence checks. The periodic check (every
 * `deadman.check_every_s`) runs only after `start()`; tests leave it off and
 * call `checkNow()` with an injected clock.
 */
import type { Clock } from '../clock.ts'
import { isoTime } from '../clock.ts'
import { type Config, unsetApiKeys } from '../config.ts'
import { parseConfigText } from '../config-file.ts'
import { ConfigError } from '../errors.ts'
import type { Store } from '../telemetry/store.ts'
import { AgentWatch } from './agents.ts'
import { CommandGroups } from './command.ts'
import { type Alert, makeAlert } from './alert.ts'
import { healthOf } from './health.ts'
import { lastGoodPath, readLastGood, shortHash, snapshotProblem } from './last-good.ts'
import type { LiveConfig, ReloadResult } from './live-config.ts'
import { Lockouts } from './lockouts.ts'
import { Promoter } from './promotion.ts'
import type { RuntimeState } from './runtime.ts'

export interface DeadmanDeps {
  live: LiveConfig
  store: Store
  clock: Clock
  runtime: RuntimeState
  /** The environment commands inherit. */
  env: Record<string, string | undefined>
  log: (message: string) => void
  /**
   * Whether this server is its config's router now (router-role.ts); a one-off beside it neither
   * promotes nor checks agents or dropped tokens. Default: always.
   */
  isRouter?: () => boolean
}

/** The router's health and vital signs, as GET /heartbeat reports them. */
export interface HeartbeatReport {
  reasons: string[]
  /** See Health: false when no reason is one a rollback could cure. */
  rollbackMayHelp: boolean
  configHash: string
  lastKnownGood: string | null
  uptimeS: number
  inFlight: number
  pendingRows: number | null
  lastSuccessAt: string | null
}

export class DeadmanSwitch {
  readonly promoter: Promoter
  readonly agents: AgentWatch
  /** The process groups of the rollback and alert commands running, ended when witness stops (endCommands). */
  private readonly commands = new CommandGroups()
  readonly alert: Alert
  readonly lockouts: Lockouts
  private timer: ReturnType<typeof setTimeout> | null = null
  private checking: Promise<void> | null = null
  /** The reasons of the last health check, joined without their numbers (empty: healthy; null: none yet). */
  private lastHealth: string | null = null

  constructor(private readonly deps: DeadmanDeps) {
    const config = () => deps.live.current()
    this.alert = makeAlert({ config, env: deps.env, log: deps.log, groups: this.commands })
    this.promoter = new Promoter(deps)
    deps.runtime.proven = (hash) => this.promoter.proven(hash)
    this.lockouts = new Lockouts(deps.clock)
    const lockouts = this.lockouts
    this.agents = new AgentWatch({
      store: deps.store,
      clock: deps.clock,
      config,
      env: deps.env,
      alert: this.alert,
      log: deps.log,
      lockedOut: (agent, windowMs) => lockouts.lockedOut(agent, windowMs),
      groups: this.commands,
    })
    deps.live.onSwap((next, previous) => {
      deps.runtime.resetChains(previous.chains.keys(), (chain) => next.chains.has(chain))
      // Back on the last known good (the watchdog's reload, an operator's revert): what the configs
      // after it removed is not its doing, and a rollback could not cure it. As at a restart onto it.
      if (next.hash === this.promoter.lastKnownGood()) deps.runtime.forgetRemoved()
      lockouts.reloaded(previous, next)
    })
  }

  /**
   * At start-up. A config applied by a restart rather than a reload (a push deployed with an
   * upgrade, a reboot after a push) is compared with the last known good, as a reload compares
   * it with the config it replaces: a request still naming a chain it removed counts as a failure
   * of that chain, and a token it dropped is watched (lockouts.ts). The last known good is the
   * config that has proven itself, so this memory ends by itself: once the running config is the
   * last known good in its turn, the next start compares it with itself. Best effort: a snapshot
   * that cannot be read or parsed is logged and compared with nothing.
   */
  resume(): void {
    const { live, runtime, log } = this.deps
    const boot = live.current()
    let lastGood: Config
    let hash: string
    try {
      const snapshot = readLastGood(live.path)
      if (!snapshot || snapshot.hash === boot.hash || snapshotProblem(snapshot) !== null) return
      hash = snapshot.hash
      lastGood = parseConfigText(snapshot.bytes, snapshot.path)
    } catch (error) {
      const why = error instanceof ConfigError ? error.issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ') : (error as Error).message
      log(`deadman: the last known good config (${lastGoodPath(live.path)}) cannot be read as a config, so this one is compared with none: ${why}`)
      return
    }
    // A restart onto a file that lost its auth block (a reload would have refused it) runs open: said
    // loudly, and to the alert command. Promotion will not make it the last known good (promotion.ts).
    if (boot.auth === null && lastGood.auth !== null) {
      // The alert is logged too (ALERT …), whether or not an alert_command is set.
      void this.alert(`witness: this config has no auth and the last known good (sha256 ${shortHash(hash)}) has: witness runs open (no token asked; agents name themselves), and this config will not be promoted over it`)
    }
    const removed = [...lastGood.chains.keys()].filter((chain) => !boot.chains.has(chain)).sort()
    runtime.resetChains(removed, (chain) => boot.chains.has(chain))
    // Without auth every caller is let in: no token is refused, so none is watched.
    const dropped = boot.auth ? this.lockouts.reloaded(lastGood, boot) : []
    const what = [
      removed.length ? `requests still naming chain(s) ${removed.join(', ')} count as failures` : '',
      dropped.length ? `the tokens of ${dropped.join(', ')}, which it no longer accepts, are watched` : '',
    ].filter(Boolean)
    if (what.length) log(`deadman: this config differs from the last known good (sha256 ${shortHash(hash)}); until it is the last known good in its turn, ${what.join(', and ')}`)
  }

  /** Checks health now (a probe commit included) and feeds the result to promotion. */
  async heartbeat(): Promise<HeartbeatReport> {
    const { live, runtime, store, clock } = this.deps
    const { reasons, rollbackMayHelp } = await healthOf({ store, clock, runtime, config: () => live.current() })
    // The log says when health changes (and why), not on every check: reasons are compared without
    // their numbers, which count up while they last ("failed for 27 s", "2 call(s) stuck").
    const health = reasons.map((reason) => reason.replace(/\d+/g, 'N')).join('; ')
    if (health !== this.lastHealth) {
      if (health) this.deps.log(`health: unhealthy: ${reasons.join('; ')}`)
      else if (this.lastHealth !== null) this.deps.log('health: ok again')
      this.lastHealth = health
    }
    // A promoted config has proven itself: the chains removed before it are no longer a reason to roll it back.
    if (this.isRouter() && this.promoter.observe(reasons.length === 0) !== null) runtime.forgetRemoved()
    let pendingRows: number | null = null
    try {
      pendingRows = store.pendingCount()
    } catch {
      // unreadable: the write probe has said why
    }
    return {
      reasons,
      rollbackMayHelp,
      configHash: live.current().hash,
      lastKnownGood: this.promoter.lastKnownGood(),
      uptimeS: Math.floor((clock.monotonic() - runtime.startedAt) / 1000),
      inFlight: runtime.inFlight(),
      pendingRows,
      lastSuccessAt: runtime.lastSuccessAt === null ? null : isoTime(runtime.lastSuccessAt),
    }
  }

  /**
   * One periodic check: health (and promotion), tokens a reload locked out, then agents' silence. One
   * at a time. `wait`: resolves once the rollback_commands it started have run and been recorded too
   * (the periodic check does not wait for them: see AgentWatch.checkNow).
   */
  checkNow(wait = true): Promise<void> {
    this.checking ??= (async () => {
      try {
        await this.heartbeat()
        if (!this.isRouter()) return
        for (const message of this.lockouts.alerts(this.deps.live.current().deadman.failing_window_s * 1000)) await this.alert(message)
        await this.agents.checkNow(wait)
      } catch (error) {
        this.deps.log(`deadman check failed: ${(error as Error).message}`)
      } finally {
        this.checking = null
      }
    })()
    return this.checking
  }

  /**
   * Re-reads the config file (SIGHUP, POST /admin/reload); throws ReloadRefusedError if invalid.
   * `warnings`: what the config now running will not do as written (a provider's API key variable unset: its steps are skipped).
   */
  reload(): ReloadResult & { warnings: string[] } {
    try {
      const result = this.deps.live.reload()
      const restart = result.restartRequired.length ? `; restart to apply: ${result.restartRequired.join(', ')}` : ''
      this.deps.log(`config ${result.status}: sha256 ${result.configHash}${restart}`)
      // What start-up warns of, said again for the config now running (a provider added without its key).
      const warnings = unsetApiKeys(this.deps.live.current(), this.deps.env)
      for (const warning of warnings) this.deps.log(warning)
      return { ...result, warnings }
    } catch (error) {
      this.deps.log((error as Error).message)
      throw error
    }
  }

  private isRouter(): boolean {
    return this.deps.isRouter?.() ?? true
  }

  /** Starts the periodic check. */
  start(): void {
    if (this.timer) return
    const tick = () => {
      this.timer = setTimeout(() => {
        void this.checkNow(false).finally(() => {
          if (this.timer) tick()
        })
      }, this.deps.live.current().deadman.check_every_s * 1000)
      this.timer.unref?.()
    }
    tick()
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
  }

  /** Kills the rollback and alert commands still running: witness is stopping, past its grace. */
  endCommands(): void {
    this.agents.stop()
    this.commands.end()
  }

  /** Resolves once no check is running, nor a rollback_command one started (with its row). */
  async idle(): Promise<void> {
    await this.checking
    await this.agents.settled()
  }
}
