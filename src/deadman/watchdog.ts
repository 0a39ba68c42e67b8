/**
 * One run of `witness watchdog`, outside the router: ping GET /heartbeat,
 * count consecutive failures in the state file, and after `failures` of
 * them in a row restore the last-known-good config, restart the router and
 * record a `rollback` row: through POST /deadman/rollback if the router
 * answers, else straight into the SQLite file (a one-shot write; pending
 * rows are left for the router to finish at its start). It never rolls
 * back without a snapshot, or when the running config already is the last
 * known good: that is reported, loudly, once per streak of failures.
 *
 * Exit: 0 the check passed, or a rollback was carried out and recorded;
 * 1 the check failed below the threshold; 2 a rollback was needed but could
 * not be done or recorded.
 */
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Clock, isoTime, systemClock } from '../clock.ts'
import { type Config, loadConfig, openListenProblem, parseConfigText, sha256 } from '../config.ts'
import { JobBusyError } from '../errors.ts'
import { redact } from '../redaction.ts'
import { type JobLock, takeJobLock } from '../jobs/job-lock.ts'
import { rollbackById } from '../telemetry/deadman-store.ts'
import { openStore } from '../telemetry/store.ts'
import { makeAlert } from './alert.ts'
import { type CommandResult, apiKeyNames, describeResult, runCommand, succeeded } from './command.ts'
import { lastGoodPath, readLastGood, restoreLastGood, shortHash, snapshotProblem } from './last-good.ts'
import { restartRequired } from './live-config.ts'
import { configRollbackMessage, recordRollback } from './rollback-row.ts'
import { type HeartbeatCheck, type RouterClient, checkHeartbeat, request, waitForRouter } from './router-client.ts'
import { type WatchdogState, readWatchdogState, writeWatchdogState } from './watchdog-state.ts'

export interface WatchdogOptions {
  /** Absolute path of the router's config file. */
  configPath: string
  /** The router's base URL; default: the configured listen address. */
  url?: string
  /** Consecutive failed checks that trigger a rollback. */
  failures: number
  statePath: string
  /** Sent as `Authorization: Bearer …` when set. */
  token?: string
  /** Time limit of each HTTP request. */
  requestTimeoutMs: number
  /** How long to wait for the restarted router to answer before writing the row directly. */
  waitMs: number
  /** The environment commands inherit. */
  env: Record<string, string | undefined>
  log: (line: string) => void
  clock?: Clock
}

export type WatchdogExit = 0 | 1 | 2

interface Outcome {
  exit: WatchdogExit
  state: Omit<WatchdogState, 'updated_at' | 'rollback'>
}

export async function watchOnce(o: WatchdogOptions): Promise<WatchdogExit> {
  const clock = o.clock ?? systemClock
  // One run at a time (a timer and a hand-run, or cron): two would both roll back, restart and record.
  let lock: JobLock
  try {
    lock = takeJobLock('watchdog', `${o.statePath}.lock`, () => clock.now())
  } catch (error) {
    if (!(error instanceof JobBusyError)) throw error
    o.log(`${error.message.replace(/; nothing done$/, '')}: this run checks nothing`)
    return 1
  }
  try {
    const settings = readSettings(o.configPath)
    const url = o.url ?? (settings ? listenUrl(o.configPath, settings) : undefined)
    if (!url) {
      o.log(`cannot check: no --url given, and neither ${o.configPath} nor its last-known-good snapshot can be read`)
      return 2
    }
    const router: RouterClient = { url, token: o.token, timeoutMs: o.requestTimeoutMs }
    let previous = readWatchdogState(o.statePath)
    if (previous.rollback) {
      if (!(await recordInterrupted(o, router, previous.rollback, clock))) return 2
      previous = { ...previous, rollback: null, failures: 0, reported: false }
      writeWatchdogState(o.statePath, { ...previous, updated_at: isoTime(clock.now()) })
    }
    const check = await checkHeartbeat(router)
    const outcome = await decide(o, router, check, previous, settings, clock)
    writeWatchdogState(o.statePath, { ...outcome.state, rollback: null, updated_at: isoTime(clock.now()) })
    return outcome.exit
  } finally {
    lock.release()
  }
}

/**
 * A rollback a previous run began and never recorded (it was killed: by systemd's timeout while
 * the restart command ran, say): the snapshot may be in place, so the rollback is recorded now,
 * its restart's outcome unknown. False when it could not be recorded (the entry is kept).
 */
async function recordInterrupted(o: WatchdogOptions, router: RouterClient, begun: NonNullable<WatchdogState['rollback']>, clock: Clock): Promise<boolean> {
  // Killed before the snapshot was put in place: no rollback happened, there is nothing to record.
  // Unless the router runs the snapshot: it was restored and applied, and the file changed since (a new push).
  if (fileHash(o.configPath) !== begun.new_hash) {
    const running = (await checkHeartbeat(router)).configHash
    if (running !== begun.new_hash) {
      o.log(`a rollback begun at ${begun.started_at} was not finished, and neither the config file nor the router holds the snapshot it was restoring (the run stopped before restoring it): nothing recorded`)
      return true
    }
    o.log(`a rollback begun at ${begun.started_at} was not finished; the config file has changed since, but the router runs the snapshot it restored: recording it`)
  }
  const settings = readSettings(o.configPath)
  if (!settings) {
    o.log(`a rollback begun at ${begun.started_at} was never recorded, and ${o.configPath} cannot be read to record it now`)
    return false
  }
  const restart: Restart = { ok: false, summary: 'the watchdog was stopped before it finished (the restart outcome is unknown); recorded by the next run', command: null, result: null }
  const entry = { id: begun.id, agent: settings.deadman.name, oldHash: begun.old_hash, newHash: begun.new_hash, reason: `${begun.reason}; ${restart.summary}`, restart }
  const recorded = await recordAndAlert(o, router, settings, clock, entry, 'an interrupted rollback')
  return recorded.ok
}

async function decide(o: WatchdogOptions, router: RouterClient, check: HeartbeatCheck, previous: WatchdogState, settings: Config | null, clock: Clock): Promise<Outcome> {
  if (check.ok) {
    o.log(`heartbeat ok at ${router.url} (config ${shortHash(check.configHash)})`)
    return { exit: 0, state: { failures: 0, last_failure: null, reported: false } }
  }
  const failures = previous.failures + 1
  if (failures < o.failures) {
    o.log(`heartbeat failed (${failures} of ${o.failures} before a rollback): ${check.reason}`)
    return { exit: 1, state: { failures, last_failure: check.reason, reported: previous.reported } }
  }
  const why = `after ${failures} failed health check${failures === 1 ? '' : 's'} (${check.reason})`
  const refuse = async (because: string): Promise<Outcome> => {
    const summary = `NOT ROLLING BACK ${o.configPath} ${why}: ${because}`
    if (previous.reported || !settings) o.log(summary)
    else await makeAlert({ config: () => settings, env: o.env, log: o.log })(summary)
    return { exit: 2, state: { failures, last_failure: check.reason, reported: true } }
  }

  const snapshot = readLastGood(o.configPath)
  // The config in the file, read once for the two checks below (null when it does not validate).
  const inFile = configIn(o.configPath)
  if (check.rollbackMayHelp === false && snapshot && !databaseSettingsDiffer(inFile, check.configHash, snapshot.bytes, o.configPath)) {
    return refuse('the router says its config is not the cause (its database is), and the snapshot keeps the same database settings; a rollback cannot cure this')
  }
  if (!snapshot) return refuse(`no last-known-good snapshot (${lastGoodPath(o.configPath)})`)
  const tampered = snapshotProblem(snapshot)
  if (tampered) return refuse(tampered)
  const runningHash = check.configHash ?? fileHash(o.configPath)
  if (runningHash === snapshot.hash) {
    return refuse(`the running config ${shortHash(runningHash)} already is the last known good; a rollback cannot cure this`)
  }
  // A config in the file that the router does not run yet, and would take (pushed, not yet reloaded),
  // was never tried: it is not overwritten. The snapshot itself there (a rollback whose restart
  // failed) is restored and restarted again.
  const onDisk = fileHash(o.configPath)
  if (check.configHash !== null && onDisk !== null && onDisk !== check.configHash && onDisk !== snapshot.hash && reloadable(inFile, router.url)) {
    return refuse(`${o.configPath} (${shortHash(onDisk)}) is not the config the router runs (${shortHash(check.configHash)}): it has not been applied yet, and a rollback would overwrite it untried (reload or restart the router to apply it)`)
  }
  let restored: Config
  try {
    restored = parseConfigText(snapshot.bytes, o.configPath)
  } catch (error) {
    return refuse(`the last-known-good snapshot does not validate: ${(error as Error).message}`)
  }
  const alert = makeAlert({ config: () => restored, env: o.env, log: o.log })
  // Written before the config is touched: a run killed from here on is finished by the next one.
  // The id makes the rollback one row, whoever records it and however often it is reported.
  const rollbackId = Bun.randomUUIDv7()
  writeWatchdogState(o.statePath, {
    failures,
    last_failure: check.reason,
    reported: previous.reported,
    rollback: { id: rollbackId, old_hash: runningHash, new_hash: snapshot.hash, reason: why, started_at: isoTime(clock.now()) },
    updated_at: isoTime(clock.now()),
  })
  try {
    restoreLastGood(o.configPath, snapshot)
  } catch (error) {
    await alert(`rollback of ${o.configPath} failed ${why}: cannot restore the snapshot: ${(error as Error).message}`)
    return { exit: 2, state: { failures, last_failure: check.reason, reported: true } }
  }
  const oldHash = runningHash
  o.log(`restored ${snapshot.path} over ${o.configPath} (${shortHash(oldHash)} → ${shortHash(snapshot.hash)}) ${why}`)

  const restart = await restartRouter(o, router, check, restored, oldHash, snapshot.hash)
  o.log(restart.summary)
  const entry = {
    id: rollbackId,
    agent: restored.deadman.name,
    oldHash,
    newHash: snapshot.hash,
    reason: `${why}; ${restart.summary}`,
    restart,
  }
  const recorded = await recordAndAlert(o, router, restored, clock, entry, 'rollback')
  // The restarted router gets a fresh count; failing again on the restored config is refused, not looped on.
  return { exit: restart.ok && recorded.ok ? 0 : 2, state: { failures: 0, last_failure: check.reason, reported: false } }
}

interface Restart {
  ok: boolean
  summary: string
  command: string | null
  result: CommandResult | null
}

/** Runs `deadman.restart_command`; without one, asks a router that answers to reload. */
async function restartRouter(o: WatchdogOptions, router: RouterClient, check: HeartbeatCheck, restored: Config, oldHash: string | null, newHash: string): Promise<Restart> {
  const command = restored.deadman.restart_command
  if (command) {
    const timeoutMs = restored.deadman.command_timeout_s * 1000
    const result = await runCommand(command, {
      env: o.env,
      vars: { WITNESS_CONFIG: o.configPath, WITNESS_OLD_CONFIG_HASH: oldHash ?? '', WITNESS_NEW_CONFIG_HASH: newHash },
      timeoutMs,
      secretNames: apiKeyNames(restored),
    })
    const output = result.output ? ` (${result.output.split('\n')[0]})` : ''
    return { ok: succeeded(result), summary: `restart_command ${describeResult(result, timeoutMs)}${succeeded(result) ? '' : output}`, command: 'restart_command', result }
  }
  if (check.answered) {
    const res = await request(router, '/admin/reload', { method: 'POST' })
    const ok = res?.status === 200
    return { ok, summary: ok ? 'no restart_command; reloaded through POST /admin/reload' : `no restart_command, and POST /admin/reload failed (${res ? `HTTP ${res.status}` : 'no answer'})`, command: null, result: null }
  }
  return { ok: false, summary: 'no deadman.restart_command configured: the router was not restarted', command: null, result: null }
}

/** Records a rollback, says how, and alerts on it unless the router did (the endpoint alerts for rows it writes). */
async function recordAndAlert(o: WatchdogOptions, router: RouterClient, config: Config, clock: Clock, entry: Parameters<typeof recordEntry>[4], what: string): Promise<Recorded> {
  const recorded = await recordEntry(o, router, config, clock, entry)
  o.log(recorded.ok ? `${what} recorded (log id ${recorded.logId}, ${recorded.via})` : `${what.toUpperCase()} NOT RECORDED: ${recorded.error}`)
  if (!recorded.byRouter) {
    const message = configRollbackMessage(entry.oldHash, entry.newHash, entry.reason)
    await makeAlert({ config: () => config, env: o.env, log: o.log })(recorded.ok ? message : `${message}; NOT RECORDED: ${recorded.error}`)
  }
  return recorded
}

/** How the row was recorded: `byRouter` when the router wrote it (and alerted on it). */
type Recorded = { ok: true; logId: number; via: string; byRouter: boolean } | { ok: false; error: string; byRouter: false }

async function recordEntry(
  o: WatchdogOptions,
  router: RouterClient,
  restored: Config,
  clock: Clock,
  entry: { id: string; agent: string; oldHash: string | null; newHash: string; reason: string; restart: Restart },
): Promise<Recorded> {
  const facts = {
    command: entry.restart.command,
    exitStatus: entry.restart.result?.exitStatus ?? null,
    timedOut: entry.restart.result?.timedOut ?? false,
    output: entry.restart.result?.output ?? null,
  }
  if (await waitForRouter(router, o.waitMs)) {
    const res = await request(router, '/deadman/rollback', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        agent: entry.agent,
        old_config_hash: entry.oldHash,
        new_config_hash: entry.newHash,
        reason: entry.reason,
        endpoint: o.configPath,
        command: facts.command,
        exit_status: facts.exitStatus,
        timed_out: facts.timedOut,
        output: facts.output,
        rollback_id: entry.id,
      }),
    })
    if (res?.status === 201 || res?.status === 200) {
      const body = (await res.json().catch(() => ({}))) as { log_id?: number; already_recorded?: boolean }
      return { ok: true, logId: body.log_id ?? 0, via: body.already_recorded ? 'already recorded, as POST /deadman/rollback says' : 'through POST /deadman/rollback', byRouter: true }
    }
    o.log(`POST /deadman/rollback ${res ? `answered HTTP ${res.status}` : 'did not answer'}; writing the row directly`)
  }
  try {
    // A one-shot writer. Never recoverPending here: pending rows may belong to a live router.
    const store = openStore(restored.databasePath, { sync: restored.raw.database_sync, busyTimeoutMs: restored.raw.database_busy_timeout_ms })
    try {
      // Recorded already (a POST that timed out here but committed, a run killed after writing it).
      const known = (): Recorded | null => {
        const earlier = rollbackById(store.reader, entry.id)
        return earlier ? { ok: true, logId: earlier.log_id, via: `already recorded (by the ${earlier.recorded_by})`, byRouter: earlier.recorded_by === 'endpoint' } : null
      }
      const before = known()
      if (before) return before
      try {
        const logId = await recordRollback(store, clock, {
          agent: entry.agent,
          model: entry.newHash,
          endpoint: o.configPath,
          errorMessage: configRollbackMessage(entry.oldHash, entry.newHash, entry.reason),
          facts: { ...facts, oldConfigHash: entry.oldHash, newConfigHash: entry.newHash, reason: entry.reason, recordedBy: 'watchdog', rollbackId: entry.id },
        })
        return { ok: true, logId, via: `straight into ${restored.databasePath}`, byRouter: false }
      } catch (error) {
        const raced = known()
        if (raced) return raced
        throw error
      }
    } finally {
      store.close()
    }
  } catch (error) {
    return { ok: false, error: redact((error as Error).message), byRouter: false }
  }
}

/** The config the router runs, or (when that cannot be parsed) the snapshot it would be rolled back to. */
function readSettings(configPath: string): Config | null {
  const inFile = configIn(configPath)
  if (inFile) return inFile
  const snapshot = readLastGood(configPath)
  if (!snapshot) return null
  try {
    return parseConfigText(snapshot.bytes, configPath)
  } catch {
    return null
  }
}

/**
 * Where the router listens: the address the running server wrote beside its database
 * (`<database>.serve.url`) or its config (`<config>.serve.url`), else the config's `listen`. A
 * `listen` or `database` changed in the file waits for a restart, and so does a server started with
 * `serve --port`/`--db`; probing the file's address before then would count a healthy router as
 * down, and roll back a good config.
 */
function listenUrl(configPath: string, config: Config): string {
  let host = config.raw.listen.host.replace(/^\[(.*)\]$/, '$1')
  let port = config.raw.listen.port
  // The database's first: one server at a time holds a database (its lock), so that file is never
  // another server's; the config's is for a database moved in the file since the server started.
  for (const file of [`${resolve(config.databasePath)}.serve.url`, `${resolve(configPath)}.serve.url`]) {
    try {
      const bound = new URL(readFileSync(file, 'utf8').trim())
      host = bound.hostname.replace(/^\[(.*)\]$/, '$1')
      port = Number(bound.port)
      break
    } catch {
      // no server has written one (or it stopped): the next place, then the config's listen
    }
  }
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`
}

/**
 * Whether the snapshot's database settings (`database_max_mb`, the busy timeout, the file, …) differ
 * from those of the running config, when the file holds it: a config that lowered the size cap can
 * be the cause of a full database after all, and the snapshot its cure.
 */
function databaseSettingsDiffer(inFile: Config | null, runningHash: string | null, snapshotBytes: Uint8Array, configPath: string): boolean {
  if (!inFile || (runningHash !== null && inFile.hash !== runningHash)) return false
  try {
    return restartRequired(inFile, parseConfigText(snapshotBytes, configPath)).some((key) => key.startsWith('database'))
  } catch {
    return false
  }
}

/** Whether the router at `url` would take the config in the file (`inFile`, null when it does not validate) on a reload: it keeps auth on a public address. */
function reloadable(inFile: Config | null, url: string): boolean {
  if (!inFile) return false
  try {
    return openListenProblem(new URL(url).hostname.replace(/^\[(.*)\]$/, '$1'), inFile.auth !== null) === null
  } catch {
    return false
  }
}

/** The config in the file, or null when it cannot be read or does not validate. */
function configIn(configPath: string): Config | null {
  try {
    return loadConfig(configPath)
  } catch {
    return null
  }
}

function fileHash(path: string): string | null {
  return existsSync(path) ? sha256(readFileSync(path)) : null
}
