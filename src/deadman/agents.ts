/**
 * Agents' heartbeats: who beat last when, with which config. A listed agent
 * (`deadman.agents`) silent longer than its `max_silence_s` has its
 * `rollback_command` run once for that silence, a `rollback` row written
 * and an alert sent; its next beat ends the episode. Every change is
 * committed to `deadman_agent`, so a restart forgets nothing. Silence is
 * counted from the latest of the last beat, this router's start (agents
 * cannot beat to a router that was down) and when a reload first listed
 * the agent (it was not watched before). An agent not listed that has not
 * beaten for `retention.keep_days` is forgotten (its record, here and in
 * the file): in open mode callers name themselves, and a name per run or
 * session would otherwise be kept for ever, in memory and in GET /deadman.
 */
import type { Clock } from '../clock.ts'
import { isoTime } from '../clock.ts'
import type { Config } from '../config.ts'
import { type AgentRecord, type RollbackView, agentWrite, forgetAgentsWrite, lastRollbackOf, lastRollbacks, readAgents } from '../telemetry/deadman-store.ts'
import type { Store } from '../telemetry/store.ts'
import type { Alert } from './alert.ts'
import { type CommandGroups, type CommandResult, apiKeyNames, describeResult, runCommand, succeeded } from './command.ts'
import { shortHash } from './last-good.ts'
import { type RollbackEntry, recordRollback } from './rollback-row.ts'

/** Agents not listed in deadman.agents kept (the most recent beats): the rest are forgotten (forgetSilent). */
export const MAX_UNLISTED_AGENTS = 1000

export interface AgentWatchDeps {
  store: Store
  clock: Clock
  config: () => Config
  /** The environment commands inherit. */
  env: Record<string, string | undefined>
  alert: Alert
  log: (message: string) => void
  /** Whether the agent's token was refused within `windowMs` because the last reload dropped it: its silence is not its own. */
  lockedOut?: (agent: string, windowMs: number) => boolean
  /** Where rollback_commands' process groups are kept, to be ended when witness stops. */
  groups?: CommandGroups
}

/** One agent as GET /deadman shows it. */
export interface AgentView {
  agent: string
  watched: boolean
  state: AgentRecord['state']
  last_beat_at: string | null
  silence_s: number
  max_silence_s: number | null
  config_hash: string | null
  config_hash_since: string | null
  previous_config_hash: string | null
  last_rollback: RollbackView | null
}

export class AgentWatch {
  private readonly records = new Map<string, AgentRecord>()
  // Silence is measured on the monotonic clock, as the router's own health is: a wall clock stepped
  // ahead (NTP, a VM resumed) must not silence every agent at once, nor one stepped back hide one.
  private readonly startedAt: number
  /** When each listed agent was first seen listed (at start, or after a reload added it); monotonic. */
  private readonly listedAt = new Map<string, number>()
  /** When each agent last beat in this process; monotonic (the stored last_beat_at is the wall time, for people). */
  private readonly beatAt = new Map<string, number>()
  /** Agents whose rollback_command a previous run started and never recorded (it stopped meanwhile). */
  private interrupted: AgentRecord[]
  /** Agents whose silence is being handled (its command running, its row being written): not handled twice at once. */
  private readonly handling = new Map<string, Promise<void>>()
  /**
   * Rollbacks whose command ran and whose row, or the state after it, the database refused: written
   * at each check until it takes. The agent stays rolling_back meanwhile, so a stop before then
   * leaves it to the next start (recordInterrupted), as a run stopped during its command does.
   */
  private readonly unfinished = new Map<string, Unfinished>()
  /** Beats of each agent in this process (beatNow): a change that began before one can tell, whatever the clocks did. */
  private readonly beatCount = new Map<string, number>()
  /** Witness is stopping past its grace (stop): a command that ends now is recorded by the next start. */
  private stopping = false
  /** Each agent's last change to its record queued (serial). */
  private readonly queues = new Map<string, Promise<unknown>>()

  constructor(private readonly deps: AgentWatchDeps) {
    this.startedAt = deps.clock.monotonic()
    for (const record of readAgents(deps.store.reader)) this.records.set(record.agent, record)
    this.interrupted = [...this.records.values()].filter((r) => r.state === 'rolling_back')
    for (const agent of Object.keys(deps.config().deadman.agents)) this.listedAt.set(agent, this.startedAt)
  }

  /**
   * Records a heartbeat (committed before it resolves); ends a silence episode. An agent's beats, and
   * the other changes to its record, are taken one at a time (serial).
   */
  beat(agent: string, configHash: string | undefined): Promise<AgentView> {
    return this.serial(agent, () => this.beatNow(agent, configHash))
  }

  /**
   * Runs `change` after the changes to the agent's record queued before it, so each reads the record
   * the one before it saved: a beat and the end of a rollback (or its start) at the same moment must
   * not each save a copy of the record before both, the later losing what the other wrote.
   */
  private serial<T>(agent: string, change: () => Promise<T>): Promise<T> {
    const before = this.queues.get(agent)
    const mine = (before ? before.catch(() => {}) : Promise.resolve()).then(change)
    this.queues.set(agent, mine)
    const done = () => {
      if (this.queues.get(agent) === mine) this.queues.delete(agent)
    }
    mine.then(done, done)
    return mine
  }

  private async beatNow(agent: string, configHash: string | undefined): Promise<AgentView> {
    const now = isoTime(this.deps.clock.now())
    const before = this.records.get(agent) ?? blank(agent)
    // A beat ends the episode, but a rollback whose row is not written yet stays rolling_back: a stop
    // before it is written leaves it to the next start, which records it (recordInterrupted).
    const state = before.state === 'rolling_back' ? 'rolling_back' : 'ok'
    const next: AgentRecord = { ...before, lastBeatAt: now, state, silenceHandled: false }
    if (configHash !== undefined && configHash !== before.configHash) {
      next.previousConfigHash = before.configHash
      next.configHash = configHash
      next.configHashSince = now
    }
    // Before the save's await: a check running in between must not see the new record with the old beat.
    this.beatAt.set(agent, this.deps.clock.monotonic())
    this.beatCount.set(agent, this.beats(agent) + 1)
    await this.save(next)
    if (before.state !== 'ok' && !this.handling.has(agent)) this.deps.log(`agent ${agent} is beating again (config ${shortHash(next.configHash)})`)
    else if (next.configHash !== before.configHash && before.configHash !== null) {
      this.deps.log(`agent ${agent} now runs config ${shortHash(next.configHash)} (was ${shortHash(before.configHash)})`)
    }
    return this.view(next)
  }

  /**
   * Checks every listed agent once; starts the commands of those newly silent; forgets the long
   * silent unlisted ones. `wait`: resolves once the commands it started have run and been recorded
   * too. The periodic check does not wait: one agent's slow command must not hold up the next
   * checks (another agent's silence, promotion) for its command_timeout_s.
   */
  async checkNow(wait = true): Promise<void> {
    const watched = Object.entries(this.deps.config().deadman.agents)
    this.noteListed(watched.map(([agent]) => agent))
    await this.recordInterrupted()
    await this.finishUnfinished()
    await this.forgetSilent()
    const started: Promise<void>[] = []
    for (const [agent, rule] of watched) {
      if (this.handling.has(agent) || this.unfinished.has(agent)) continue
      const record = this.records.get(agent) ?? blank(agent)
      const silenceMs = this.silenceMs(record)
      if (silenceMs <= rule.max_silence_s * 1000 || record.silenceHandled) continue
      // Its beats are refused since a reload dropped its token: /heartbeat says so, and a rollback of the router's config cures it.
      if (this.deps.lockedOut?.(agent, rule.max_silence_s * 1000)) continue
      const handled = this.handleSilence(record, Math.round(silenceMs / 1000), rule)
        .catch((error) => {
          // Not marked handled (the database refused): the next check tries again.
          this.deps.log(`agent ${agent} is silent but its rollback could not start: ${(error as Error).message}`)
        })
        .finally(() => this.handling.delete(agent))
      this.handling.set(agent, handled)
      started.push(handled)
    }
    if (wait) await Promise.all(started)
  }

  /** Witness stops past its grace: the commands still running are being killed, and not recorded here. */
  stop(): void {
    this.stopping = true
  }

  /** Resolves once no agent's silence is being handled (the commands started and their rows). */
  async settled(): Promise<void> {
    while (this.handling.size > 0) await Promise.all(this.handling.values())
  }

  /** Every listed agent, then any other agent that has beaten. */
  list(): AgentView[] {
    const rollbacks = lastRollbacks(this.deps.store.reader)
    return this.names().map((agent) => this.view(this.records.get(agent) ?? blank(agent), rollbacks))
  }

  /**
   * The listed agents, and of the others the `others` heard from last (by name): the dashboard's
   * panel, redrawn every 30 s, which would otherwise draw every name heard within keep_days.
   * `hidden`: how many others are left out.
   */
  listSome(others: number): { agents: AgentView[]; hidden: number } {
    const { listed, rest } = this.listedAndRest()
    const shown = rest
      .sort((a, b) => (b.lastBeatAt ?? '').localeCompare(a.lastBeatAt ?? ''))
      .slice(0, others)
      .map((r) => r.agent)
      .sort()
    const rollbacks = lastRollbacks(this.deps.store.reader)
    const agents = [...listed, ...shown].map((agent) => this.view(this.records.get(agent) ?? blank(agent), rollbacks))
    return { agents, hidden: rest.length - shown.length }
  }

  /** The names list() shows, without reading each one's last rollback (a query per agent). */
  names(): string[] {
    const { listed, rest } = this.listedAndRest()
    return [...listed, ...rest.map((r) => r.agent).sort()]
  }

  /** The agents deadman.agents lists (their count started: noteListed), and the records of the others. */
  private listedAndRest(): { listed: string[]; rest: AgentRecord[] } {
    const listed = Object.keys(this.deps.config().deadman.agents)
    this.noteListed(listed)
    const known = new Set(listed)
    return { listed, rest: [...this.records.values()].filter((r) => !known.has(r.agent)) }
  }

  /**
   * A rollback_command started by a run that stopped before writing its row (the state says
   * rolling_back): the row is written now, its outcome unknown, so no rollback goes unrecorded.
   */
  private async recordInterrupted(): Promise<void> {
    const interrupted = this.interrupted
    this.interrupted = []
    for (const started of interrupted) {
      const message = `rollback of agent ${started.agent} (config ${shortHash(started.configHash)}): outcome unknown, witness stopped while its rollback_command ran`
      // Its row may have been written, and only the state after it lost (a kill between the two commits).
      const written = lastRollbackOf(this.deps.store.reader, started.agent)
      // The agent beat after its rollback began (a beat keeps it rolling_back, but clears silenceHandled),
      // or has beaten since this start: the episode is over, and it is ok once the row is written.
      const base = { beatsBefore: started.silenceHandled ? 0 : -1 }
      if (written && written.recorded_by === 'router' && written.log_id > (started.lastRollbackLogId ?? 0)) {
        await this.finish(started.agent, { ...base, entry: null, logId: written.log_id, after: written.exit_status === 0 ? 'rolled_back' : 'late' })
        continue
      }
      let logId: number
      try {
        logId = await recordRollback(this.deps.store, this.deps.clock, this.rollbackEntry(started, message, null))
      } catch (error) {
        this.interrupted.push(started) // the next check tries again
        this.deps.log(`could not record the interrupted rollback of agent ${started.agent}: ${(error as Error).message}`)
        continue
      }
      await this.deps.alert(message)
      await this.finish(started.agent, { ...base, entry: null, logId, after: 'late' })
    }
  }

  private async handleSilence(record: AgentRecord, silenceS: number, rule: { max_silence_s: number; rollback_command?: string }): Promise<void> {
    const { agent } = record
    // Beats from here on end the episode (settle); one before the first save below means no silence.
    const beatsBefore = this.beats(agent)
    // Marked handled (and committed) before the command runs: once per silence, even across a
    // restart; and rolling_back until its row is written, so a stop in between is recorded later.
    // Not if the agent beat since the check found it silent: then it is not.
    const begun = await this.serial(agent, async () => {
      const current = this.records.get(agent) ?? blank(agent)
      if (this.beats(agent) !== beatsBefore || current.silenceHandled) return false
      await this.save({ ...current, state: rule.rollback_command ? 'rolling_back' : 'late', silenceHandled: true })
      return true
    })
    if (!begun) return
    const silence = `after ${silenceS} s of silence (max ${rule.max_silence_s} s)`
    if (!rule.rollback_command) {
      await this.deps.alert(`agent ${agent} silent for ${silenceS} s (max ${rule.max_silence_s} s); no rollback_command configured`)
      return
    }
    const timeoutMs = this.deps.config().deadman.command_timeout_s * 1000
    const result = await runCommand(rule.rollback_command, {
      env: this.deps.env,
      vars: { WITNESS_AGENT: agent, WITNESS_CONFIG_HASH: record.configHash ?? '', WITNESS_SILENCE_S: String(silenceS) },
      timeoutMs,
      secretNames: apiKeyNames(this.deps.config()),
      groups: this.deps.groups,
    })
    // Killed with witness at its stop: its agent stays rolling_back, for the next start to record.
    if (this.stopping) return
    const outcome = `rollback_command ${describeResult(result, timeoutMs)}`
    const message = succeeded(result)
      ? `rolled back agent ${agent} (config ${shortHash(record.configHash)}) ${silence}: ${outcome}`
      : `rollback of agent ${agent} failed ${silence}: ${outcome}`
    const after = succeeded(result) ? 'rolled_back' : 'late'
    const entry = this.rollbackEntry(record, message, result)
    let logId: number
    try {
      logId = await recordRollback(this.deps.store, this.deps.clock, entry)
    } catch (error) {
      const why = (error as Error).message
      this.deps.log(`could not record the rollback of agent ${agent}: ${why}; tried again at each check`)
      this.unfinished.set(agent, { entry, logId: null, beatsBefore, after })
      await this.deps.alert(`${message}; NOT RECORDED yet (${why}): tried again at each check`)
      return
    }
    await this.deps.alert(message)
    await this.finish(agent, { entry: null, logId, beatsBefore, after })
  }

  /**
   * Saves the state once a rollback's row is written (settle); one the database refuses is left to
   * the next check (unfinished), so the agent is not left rolling_back for good.
   */
  private async finish(agent: string, done: Unfinished & { logId: number }): Promise<void> {
    try {
      await this.settle(agent, done.beatsBefore, done.after, done.logId)
      this.unfinished.delete(agent)
    } catch (error) {
      this.unfinished.set(agent, done)
      this.deps.log(`the rollback of agent ${agent} is recorded (log id ${done.logId}), but not the state after it: ${(error as Error).message}; tried again at each check`)
    }
  }

  /**
   * The state once a rollback's row is written: `after` (rolled_back or late), or ok when the agent
   * beat since its silence (`beatsBefore`: its beats in this process then; -1: it beat already),
   * which ended the episode. Only a record still rolling_back is changed.
   */
  private settle(agent: string, beatsBefore: number, after: 'rolled_back' | 'late', logId: number): Promise<void> {
    return this.serial(agent, async () => {
      const current = this.records.get(agent)
      if (!current) return
      const state = current.state !== 'rolling_back' ? current.state : this.beats(agent) !== beatsBefore ? 'ok' : after
      await this.save({ ...current, state, lastRollbackLogId: logId })
    })
  }

  /** Writes the rows, and the states after them, that the database refused before (see `unfinished`). */
  private async finishUnfinished(): Promise<void> {
    for (const [agent, pending] of this.unfinished) {
      let logId = pending.logId
      if (logId === null) {
        try {
          logId = await recordRollback(this.deps.store, this.deps.clock, pending.entry!)
        } catch (error) {
          this.deps.log(`could not record the rollback of agent ${agent} yet: ${(error as Error).message}`)
          continue
        }
        this.deps.log(`the rollback of agent ${agent} is recorded at last (log id ${logId})`)
      }
      await this.finish(agent, { ...pending, logId })
    }
  }

  private beats(agent: string): number {
    return this.beatCount.get(agent) ?? 0
  }

  /** The row of an agent's rollback; `result` null: the command's end was not seen. */
  private rollbackEntry(record: AgentRecord, message: string, result: CommandResult | null): RollbackEntry {
    return {
      agent: record.agent,
      model: record.configHash ?? 'unknown',
      endpoint: 'heartbeat',
      errorMessage: message,
      latencyMs: result?.durationMs ?? null,
      facts: {
        oldConfigHash: record.configHash,
        newConfigHash: null,
        reason: message,
        command: 'rollback_command',
        exitStatus: result?.exitStatus ?? null,
        timedOut: result?.timedOut ?? false,
        output: result ? result.output : null,
        recordedBy: 'router',
      },
    }
  }

  /**
   * Forgets the agents not listed in `deadman.agents` whose last beat is older than
   * `retention.keep_days` (the rows of their calls and rollbacks have left the live file by then),
   * and past MAX_UNLISTED_AGENTS of them the longest silent (in open mode callers name themselves,
   * a new name per session perhaps: `GET /deadman` listed every one, megabytes of them): their
   * records are deleted from the file and dropped from memory. A listed agent is never forgotten,
   * nor one whose rollback_command is running, nor one that never beat (a listed agent a reload
   * dropped: as few as the configs). Its next beat records it afresh.
   */
  private async forgetSilent(): Promise<void> {
    const config = this.deps.config()
    const before = isoTime(this.deps.clock.now() - config.retention.keepDays * 86_400_000)
    const forgettable = (record: AgentRecord) => !Object.hasOwn(config.deadman.agents, record.agent) && record.state !== 'rolling_back' && record.lastBeatAt !== null
    const unlisted = [...this.records.values()].filter(forgettable).sort((a, b) => (a.lastBeatAt! < b.lastBeatAt! ? 1 : a.lastBeatAt! > b.lastBeatAt! ? -1 : 0))
    const picked = unlisted.filter((record, i) => i >= MAX_UNLISTED_AGENTS || record.lastBeatAt! < before).map((r) => ({ agent: r.agent, lastBeatAt: r.lastBeatAt! }))
    if (!picked.length) return
    const pickedAt = this.deps.clock.monotonic()
    try {
      await this.deps.store.write(forgetAgentsWrite(picked))
    } catch (error) {
      this.deps.log(`could not forget ${picked.length} agent(s) silent since before ${before} or beyond the ${MAX_UNLISTED_AGENTS} most recent: ${(error as Error).message}`)
      return
    }
    // One that beat while the write waited stays (the write kept it too).
    for (const { agent, lastBeatAt } of picked) {
      const record = this.records.get(agent)
      if (record && forgettable(record) && record.lastBeatAt === lastBeatAt && !((this.beatAt.get(agent) ?? -Infinity) >= pickedAt)) {
        this.records.delete(agent)
        this.beatAt.delete(agent)
        this.beatCount.delete(agent)
      }
    }
  }

  /** Starts the count of agents a reload listed; forgets those no longer listed (listed again, they start again). */
  private noteListed(listed: readonly string[]): void {
    const now = this.deps.clock.monotonic()
    for (const agent of listed) if (!this.listedAt.has(agent)) this.listedAt.set(agent, now)
    for (const agent of [...this.listedAt.keys()]) if (!listed.includes(agent)) this.listedAt.delete(agent)
  }

  private silenceMs(record: AgentRecord): number {
    // A beat before this process started counts from its start, as it always did.
    const since = Math.max(this.beatAt.get(record.agent) ?? this.startedAt, this.startedAt, this.listedAt.get(record.agent) ?? this.startedAt)
    return this.deps.clock.monotonic() - since
  }

  private async save(record: AgentRecord): Promise<void> {
    await this.deps.store.write(agentWrite(record, isoTime(this.deps.clock.now())))
    this.records.set(record.agent, record)
  }

  /** `rollbacks`: each agent's last (lastRollbacks), read once for a list; else read for this one. */
  private view(record: AgentRecord, rollbacks?: ReadonlyMap<string, RollbackView>): AgentView {
    const agents = this.deps.config().deadman.agents
    const rule = Object.hasOwn(agents, record.agent) ? agents[record.agent] : undefined
    const silenceMs = this.silenceMs(record)
    const overdue = rule !== undefined && silenceMs > rule.max_silence_s * 1000
    return {
      agent: record.agent,
      watched: rule !== undefined,
      state: record.state === 'ok' && overdue ? 'late' : record.state,
      last_beat_at: record.lastBeatAt,
      silence_s: Math.max(0, Math.round(silenceMs / 1000)),
      max_silence_s: rule?.max_silence_s ?? null,
      config_hash: record.configHash,
      config_hash_since: record.configHashSince,
      previous_config_hash: record.previousConfigHash,
      // Whoever recorded it: this switch, a report to POST /deadman/rollback, the watchdog's direct write.
      last_rollback: rollbacks ? (rollbacks.get(record.agent) ?? null) : lastRollbackOf(this.deps.store.reader, record.agent),
    }
  }
}

function blank(agent: string): AgentRecord {
  return {
    agent,
    lastBeatAt: null,
    configHash: null,
    configHashSince: null,
    previousConfigHash: null,
    state: 'ok',
    silenceHandled: false,
    lastRollbackLogId: null,
  }
}

/** A rollback whose command ran, not finished in the file: its row (`entry`, while `logId` is null) or the state after it. */
interface Unfinished {
  entry: RollbackEntry | null
  logId: number | null
  beatsBefore: number
  after: 'rolled_back' | 'late'
}
