/**
 * One run of `witness watchdog`, outside the router: ping GET /heartbeat,
 * count consecutive failures in the state file, and after `failures` of
 * them in a row restore the last-known-good config, restart the router,
 * check that it runs the snapshot, and record a `rollback` row: through
 * POST /deadman/rollback if the router answers, else straight into the
 * SQLite file (watchdog-record.ts). It never rolls back without a snapshot,
 * or when the running config already is the last known good: that is
 * reported, loudly, once per streak of failures. A rollback the router did
 * not take (watchdog-restart.ts) is recorded and alerted once as not in
 * effect; later streaks try its restart again, quietly, until it takes.
 *
 * Exit: 0 the check passed, or a rollback was carried out, took effect and
 * was recorded; 1 the check failed below the threshold; 2 a rollback was
 * needed but could not be done, did not take effect, or was not recorded.
 */
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type Clock, isoTime, systemClock } from '../clock.ts'
import { type Config, openListenProblem } from '../config.ts'
import { loadConfig, parseConfigText } from '../config-file.ts'
import { sha256 } from '../hash.ts'
import { JobBusyError } from '../errors.ts'
import { type JobLock, takeJobLock } from '../jobs/job-lock.ts'
import { databaseFileOf } from '../telemetry/store.ts'
import { makeAlert } from './alert.ts'
import { lastGoodPath, readLastGood, restoreLastGood, shortHash, snapshotProblem } from './last-good.ts'
import { restartRequired } from './live-config.ts'
import { type HeartbeatCheck, type RouterClient, checkHeartbeat } from './router-client.ts'
import { readServed, servedPath } from './served-config.ts'
import { readServedUrl, servedUrlPath } from './served-url.ts'
import { type RecordOptions, recordAndAlert } from './watchdog-record.ts'
import { type Restart, restartOntoSnapshot } from './watchdog-restart.ts'
import { type WatchdogState, readWatchdogState, writeWatchdogState } from './watchdog-state.ts'

export interface WatchdogOptions {
  /** Absolute path of the router's config file. */
  configPath: string
  /** The router's base URL; default: the configured listen address. */
  url?: string
  /**
   * The database the router writes (`serve --db`), for a row written straight into it; default: the
   * one the last server on this config was given with `serve --db` (`<config>.serve.json`), else the
   * config's `database`.
   */
  dbPath?: string
  /** Consecutive failed checks that trigger a rollback. */
  failures: number
  statePath: string
  /** Sent as `Authorization: Bearer …` when set. */
  token?: string
  /** Time limit of each HTTP request. */
  requestTimeoutMs: number
  /** How long the restarted router gets to run the snapshot (and answer) before the rollback is recorded as not in effect. */
  waitMs: number
  /** The environment commands inherit. */
  env: Record<string, string | undefined>
  log: (line: string) => void
  clock?: Clock
}

export type WatchdogExit = 0 | 1 | 2

interface Outcome {
  exit: WatchdogExit
  /** `rollback`: one carried out and not recorded, left for the next run to record. */
  state: Omit<WatchdogState, 'updated_at' | 'rollback'> & Partial<Pick<WatchdogState, 'rollback'>>
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
    // With neither config readable, where the running server said it listens is still known.
    const url = o.url ?? (settings ? listenUrl(o, settings) : servedUrl(o))
    if (!url) {
      o.log(`cannot check: no --url given, neither ${o.configPath} nor its last-known-good snapshot can be read, and no server has written where it listens (${servedUrlPath(resolve(o.configPath))})`)
      return 2
    }
    const router: RouterClient = { url, token: o.token, timeoutMs: o.requestTimeoutMs }
    let previous = readWatchdogState(o.statePath, o.log)
    // A rollback a run carried out and could not record, the database refusing still: kept, and the
    // check goes on (a watchdog blind for as long as a lock lasts would watch nothing).
    let kept: WatchdogState['rollback'] = null
    if (previous.rollback) {
      const begun = previous.rollback
      const recorded = await recordInterrupted(o, router, begun, clock)
      if (recorded === 'failed' && begun.outcome === null) return 2
      if (recorded === 'failed') {
        kept = begun
        // Until it is recorded it stands for a rollback not in effect: a streak after it tries its
        // restart again (decide: `again`), with no rollback of its own, nor row, nor alert.
        previous = { ...previous, unapplied: previous.unapplied ?? notInEffectAt(begun, begun.started_at) }
      } else {
        // Recorded, its restart's outcome unknown: while the router does not run the snapshot, that
        // rollback is not in effect, and the streaks after it try its restart again without a second row.
        const running = recorded === 'recorded' ? (await checkHeartbeat(router)).configHash : begun.new_hash
        const unapplied = running === begun.new_hash ? previous.unapplied : notInEffectAt(begun, isoTime(clock.now()))
        previous = { ...previous, rollback: null, failures: 0, reported: false, unapplied }
        writeWatchdogState(o.statePath, { ...previous, updated_at: isoTime(clock.now()) })
      }
    }
    const check = await checkHeartbeat(router)
    const outcome = await decide(o, router, check, previous, settings, clock)
    writeWatchdogState(o.statePath, { rollback: kept, ...outcome.state, updated_at: isoTime(clock.now()) })
    return outcome.exit
  } finally {
    lock.release()
  }
}

/**
 * A rollback a previous run began and never recorded (it was killed: by systemd's timeout while
 * the restart command ran, say): the snapshot may be in place, so the rollback is recorded now,
 * its restart's outcome unknown. 'failed' when it could not be recorded (the entry is kept).
 */
async function recordInterrupted(o: WatchdogOptions, router: RouterClient, begun: NonNullable<WatchdogState['rollback']>, clock: Clock): Promise<'recorded' | 'nothing' | 'failed'> {
  // Killed before the snapshot was put in place: no rollback happened, there is nothing to record.
  // Unless the router runs the snapshot: it was restored and applied, and the file changed since (a new
  // push). A run that got as far as its restart (`outcome`: it could not record it) did restore it.
  if (begun.outcome === null && fileHash(o.configPath) !== begun.new_hash) {
    const running = (await checkHeartbeat(router)).configHash
    if (running !== begun.new_hash) {
      o.log(`a rollback begun at ${begun.started_at} was not finished, and neither the config file nor the router holds the snapshot it was restoring (the run stopped before restoring it): nothing recorded`)
      return 'nothing'
    }
    o.log(`a rollback begun at ${begun.started_at} was not finished; the config file has changed since, but the router runs the snapshot it restored: recording it`)
  }
  const settings = readSettings(o.configPath)
  if (!settings) {
    o.log(`a rollback begun at ${begun.started_at} was never recorded, and ${o.configPath} cannot be read to record it now`)
    return 'failed'
  }
  // A run that could not record it knew what its restart did; one killed before did not.
  const summary = begun.outcome ?? 'the watchdog was stopped before it finished (the restart outcome is unknown)'
  const restart: Restart = { ok: false, summary: `${summary}; recorded by the next run`, command: null, result: null }
  const entry = { id: begun.id, agent: settings.deadman.name, oldHash: begun.old_hash, newHash: begun.new_hash, reason: `${begun.reason}; ${restart.summary}`, restart }
  // One kept because it could not be recorded was alerted on then, NOT RECORDED: not again each run the database refuses.
  const recorded = await recordAndAlert(recording(o), router, o.waitMs, settings, clock, entry, 'an interrupted rollback', begun.outcome === null)
  return recorded.ok ? 'recorded' : 'failed'
}

async function decide(o: WatchdogOptions, router: RouterClient, check: HeartbeatCheck, previous: WatchdogState, settings: Config | null, clock: Clock): Promise<Outcome> {
  const unapplied = previous.unapplied
  if (check.ok) {
    o.log(`heartbeat ok at ${router.url} (config ${shortHash(check.configHash)})`)
    // A rollback recorded as not in effect that has taken since (the router restarted by hand, or by systemd).
    if (unapplied && check.configHash === unapplied.new_hash && settings) {
      await makeAlert({ config: () => settings, env: o.env, log: o.log })(`the rollback of ${o.configPath} to ${shortHash(unapplied.new_hash)}, recorded at ${unapplied.recorded_at} as not in effect, is in effect now: the router runs it`)
    }
    // The router still on the config that rollback replaced (a check can pass on it: a quiet spell):
    // the rollback stays recorded as not in effect, so a later streak tries its restart again without
    // a second row or alert. A router on a third config (an operator moved on) ends it.
    const stillUnapplied = unapplied !== null && check.configHash === unapplied.old_hash ? unapplied : null
    if (stillUnapplied) {
      o.log(`the rollback recorded at ${stillUnapplied.recorded_at} is still not in effect: ${o.configPath} holds ${shortHash(stillUnapplied.new_hash)}, the router still runs ${shortHash(stillUnapplied.old_hash)} (a restart applies it)`)
    }
    return { exit: 0, state: { failures: 0, last_failure: null, reported: false, unapplied: stillUnapplied } }
  }
  const failures = previous.failures + 1
  if (failures < o.failures) {
    o.log(`heartbeat failed (${failures} of ${o.failures} before a rollback): ${check.reason}`)
    return { exit: 1, state: { failures, last_failure: check.reason, reported: previous.reported, unapplied } }
  }
  const why = `after ${failures} failed health check${failures === 1 ? '' : 's'} (${check.reason})`
  const refuse = async (because: string): Promise<Outcome> => {
    const summary = `NOT ROLLING BACK ${o.configPath} ${why}: ${because}`
    if (previous.reported || !settings) o.log(summary)
    else await makeAlert({ config: () => settings, env: o.env, log: o.log })(summary)
    return { exit: 2, state: { failures, last_failure: check.reason, reported: true, unapplied } }
  }

  // A router that does not answer because it was stopped on purpose (SIGTERM: `systemctl stop`) did
  // not fail on its config: a rollback, and its restart, would undo what was asked for.
  const stoppedAt = check.configHash === null ? readServed(o.configPath)?.stopped_at : undefined
  if (stoppedAt && !stoppedByOwnRestart(stoppedAt, previous)) return refuse(`the router was stopped on purpose at ${stoppedAt} (a clean stop, not a crash): start it again, and its checks count from there`)
  let snapshot: ReturnType<typeof readLastGood>
  try {
    snapshot = readLastGood(o.configPath)
  } catch (error) {
    return refuse(`the last-known-good snapshot ${lastGoodPath(o.configPath)} cannot be read: ${(error as Error).message}`)
  }
  // The config in the file, read once for the two checks below (null when it does not validate).
  const inFile = configIn(o.configPath)
  if (check.rollbackMayHelp === false && snapshot && !databaseSettingsDiffer(inFile, check.configHash, snapshot.bytes, o.configPath)) {
    return refuse('the router says its config is not the cause (its database is), and the snapshot keeps the same database settings; a rollback cannot cure this')
  }
  if (!snapshot) return refuse(`no last-known-good snapshot (${lastGoodPath(o.configPath)})`)
  const tampered = snapshotProblem(snapshot)
  if (tampered) return refuse(tampered)
  const onDisk = fileHash(o.configPath)
  // A router that does not answer does not say what it runs: the server notes each config it starts
  // on or reloads to (served-config.ts); without that note, the file is what a restart would run.
  const lastRun = check.configHash === null ? (readServed(o.configPath)?.config_hash ?? null) : null
  // A valid config in the file that the router down never ran was pushed and not applied: it is not
  // overwritten. One it ran, or whose start-up it died in, is rolled back; the snapshot itself there
  // (a rollback whose restart has not taken) is restored and restarted again.
  if (lastRun !== null && inFile && onDisk !== lastRun && onDisk !== snapshot.hash) {
    return refuse(`the router does not answer, and ${o.configPath} (${shortHash(onDisk)}) is not a config it has run (it last ran ${shortHash(lastRun)}, as ${servedPath(o.configPath)} says): it has not been applied yet, and a rollback would overwrite it untried (start the router to apply it)`)
  }
  // Down, the file is what a restart runs; the snapshot there (a rollback whose restart has not taken
  // yet) stands in for the config the router last ran, which that rollback replaced.
  const runningHash = check.configHash ?? (onDisk === snapshot.hash && lastRun !== null ? lastRun : onDisk)
  if (runningHash === snapshot.hash) {
    return refuse(`the running config ${shortHash(runningHash)} already is the last known good; a rollback cannot cure this`)
  }
  // A config in the file that the router does not run yet, and would take (pushed, not yet reloaded),
  // was never tried: it is not overwritten. The snapshot itself there (a rollback whose restart
  // failed) is restored and restarted again.
  if (check.configHash !== null && onDisk !== null && onDisk !== check.configHash && onDisk !== snapshot.hash && reloadable(inFile, router.url, runsWithAuth(o.configPath, check.configHash))) {
    return refuse(`${o.configPath} (${shortHash(onDisk)}) is not the config the router runs (${shortHash(check.configHash)}): it has not been applied yet, and a rollback would overwrite it untried (reload or restart the router to apply it)`)
  }
  let restored: Config
  try {
    restored = parseConfigText(snapshot.bytes, o.configPath)
  } catch (error) {
    return refuse(`the last-known-good snapshot does not validate: ${(error as Error).message}`)
  }
  const alert = makeAlert({ config: () => restored, env: o.env, log: o.log })
  // The same rollback, recorded already as not in effect, the router still on the config it replaced:
  // its restart is tried again, with no new row and no new alert unless it takes now.
  const again = unapplied !== null && unapplied.old_hash === runningHash && unapplied.new_hash === snapshot.hash
  // One rollback not recorded at a time: the state file keeps one, and a second would take its place.
  if (previous.rollback && !again) {
    return refuse(`the rollback begun at ${previous.rollback.started_at} is not recorded yet (the database refuses it): no other until it is`)
  }
  // Written before the config is touched: a run killed from here on is finished by the next one.
  // The id makes the rollback one row, whoever records it and however often it is reported.
  const rollbackId = Bun.randomUUIDv7()
  const startedAt = isoTime(clock.now())
  if (!again) {
    writeWatchdogState(o.statePath, {
      failures,
      last_failure: check.reason,
      reported: previous.reported,
      rollback: { id: rollbackId, old_hash: runningHash, new_hash: snapshot.hash, reason: why, started_at: startedAt, outcome: null },
      unapplied,
      updated_at: isoTime(clock.now()),
    })
  }
  let kept: string | null
  try {
    kept = restoreLastGood(o.configPath, snapshot).keptAs
  } catch (error) {
    await alert(`rollback of ${o.configPath} failed ${why}: cannot restore the snapshot: ${(error as Error).message}`)
    return { exit: 2, state: { failures, last_failure: check.reason, reported: true, unapplied } }
  }
  const oldHash = runningHash
  o.log(`restored ${snapshot.path} over ${o.configPath} (${shortHash(oldHash)} → ${shortHash(snapshot.hash)}) ${why}`)
  if (kept) o.log(`the config it replaced is kept as ${kept}`)

  const relocate = o.url ? null : () => listenUrl(o, restored)
  const applied = await restartOntoSnapshot({ configPath: o.configPath, env: o.env, waitMs: o.waitMs, relocate }, router, check, restored, oldHash, snapshot.hash)
  const { restart, notInEffect } = applied
  o.log(notInEffect ? `${restart.summary}; NOT IN EFFECT: ${notInEffect}` : `${restart.summary}; the router runs the snapshot`)
  // The restarted router gets a fresh count; failing again on the restored config is refused, not looped on.
  if (again) {
    if (notInEffect) {
      o.log(`the rollback recorded at ${unapplied.recorded_at} is still not in effect: not recorded again`)
      return { exit: 2, state: { failures: 0, last_failure: check.reason, reported: false, unapplied } }
    }
    await alert(`the rollback of ${o.configPath} (${shortHash(oldHash)} → ${shortHash(snapshot.hash)}), recorded at ${unapplied.recorded_at} as not in effect, is in effect now: ${restart.summary}`)
    return { exit: restart.ok ? 0 : 2, state: { failures: 0, last_failure: check.reason, reported: false, unapplied: null } }
  }
  const entry = {
    id: rollbackId,
    agent: restored.deadman.name,
    oldHash,
    newHash: snapshot.hash,
    reason: `${why}; ${restart.summary}${notInEffect ? `; NOT IN EFFECT: ${notInEffect}` : ''}`,
    restart,
  }
  // The router that answered after the restart is asked to record it; one that did not has had its wait.
  const recorded = await recordAndAlert(recording(o), applied.router, applied.answered ? o.waitMs : 0, restored, clock, entry, 'rollback')
  if (!recorded.ok) {
    // Carried out and not recorded (the database locked past its budget): kept, so the next run
    // records it (recordInterrupted) and learns then whether it took.
    const outcome = `${restart.summary}${notInEffect ? `; NOT IN EFFECT: ${notInEffect}` : ''}`
    o.log('the rollback is kept in the state file: the next run records it')
    return {
      exit: 2,
      state: {
        failures: 0,
        last_failure: check.reason,
        reported: false,
        unapplied,
        rollback: { id: rollbackId, old_hash: oldHash, new_hash: snapshot.hash, reason: why, started_at: startedAt, outcome },
      },
    }
  }
  return {
    exit: restart.ok && !notInEffect ? 0 : 2,
    state: {
      failures: 0,
      last_failure: check.reason,
      reported: false,
      unapplied: notInEffect ? { id: rollbackId, old_hash: oldHash, new_hash: snapshot.hash, recorded_at: isoTime(clock.now()), started_at: startedAt } : null,
    },
  }
}

/**
 * Whether a clean stop of the router was the restart of a rollback recorded as not in effect: it
 * came while that rollback ran, between its start and its recording. Its restart is then tried again
 * by later streaks, as for any rollback not in effect; a stop after it was recorded is an operator's,
 * and respected (so is any stop while a rollback waits, unrecorded, for the database: no window
 * known to end).
 */
function stoppedByOwnRestart(stoppedAt: string, state: WatchdogState): boolean {
  const from = state.unapplied?.started_at
  return typeof from === 'string' && stoppedAt >= from && stoppedAt <= state.unapplied!.recorded_at
}

/** A rollback as the state's `unapplied` keeps it: recorded at `at` as not in effect. */
function notInEffectAt(rollback: NonNullable<WatchdogState['rollback']>, at: string): NonNullable<WatchdogState['unapplied']> {
  return { id: rollback.id, old_hash: rollback.old_hash, new_hash: rollback.new_hash, recorded_at: at, started_at: rollback.started_at }
}

/**
 * The database the router writes: --db, else the one the last server on this config was given with
 * `serve --db` (which a restart keeps), else `config`'s own `database`.
 */
function databaseOf(o: Pick<WatchdogOptions, 'configPath' | 'dbPath'>, config: Config): string {
  if (o.dbPath) return databaseFileOf(o.dbPath)
  // The router's --db, unless that file is gone (a copy served once and removed): not made anew.
  const override = readServed(o.configPath)?.database_override
  // The file a link names, as the server keys its files (<database>.serve.url) on it.
  return databaseFileOf(override && existsSync(override) ? override : config.databasePath)
}

/** How rows are recorded by this run. */
function recording(o: WatchdogOptions): RecordOptions {
  return { configPath: o.configPath, env: o.env, log: o.log, database: (config) => databaseOf(o, config) }
}

/** The config the router runs, or (when that cannot be parsed) the snapshot it would be rolled back to. */
function readSettings(configPath: string): Config | null {
  const inFile = configIn(configPath)
  if (inFile) return inFile
  try {
    const snapshot = readLastGood(configPath)
    return snapshot && parseConfigText(snapshot.bytes, configPath)
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
function listenUrl(o: Pick<WatchdogOptions, 'configPath' | 'dbPath'>, config: Config): string {
  // The database's first: one server at a time holds a database (its lock), so that file is never
  // another server's; the config's is for a database moved in the file since the server started.
  return servedUrl(o, databaseOf(o, config)) ?? probeUrl(config.raw.listen.host.replace(/^\[(.*)\]$/, '$1'), config.raw.listen.port)
}

/** Where a running server wrote that it listens: beside `database` (or --db's file), else beside the config; null when none did. */
function servedUrl(o: Pick<WatchdogOptions, 'configPath' | 'dbPath'>, database = o.dbPath ? databaseFileOf(o.dbPath) : null): string | null {
  for (const beside of [...(database ? [database] : []), resolve(o.configPath)]) {
    const written = readServedUrl(beside)
    // None written (no server, or it stopped), or not a URL: the next place.
    if (written === null || !URL.canParse(written)) continue
    const bound = new URL(written)
    return probeUrl(bound.hostname.replace(/^\[(.*)\]$/, '$1'), Number(bound.port))
  }
  return null
}

/** The URL to probe a server listening on `host`: a wildcard address is reached on loopback. */
function probeUrl(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`
}

/**
 * Whether the snapshot's database settings differ from those of the running config (when the file
 * holds it) in a way that could cure an unwritable database: another file, a higher size cap (a
 * config that lowered it can be the cause of a full database after all), a longer busy timeout,
 * another writer or fsync. Not a lower cap, a shorter timeout or another `database_sync`, which
 * cure neither a lock another process holds nor a full file: rolling a good config back for those
 * would only restart the router into the same trouble.
 */
function databaseSettingsDiffer(inFile: Config | null, runningHash: string | null, snapshotBytes: Uint8Array, configPath: string): boolean {
  if (!inFile || (runningHash !== null && inFile.hash !== runningHash)) return false
  let snapshot: Config
  try {
    snapshot = parseConfigText(snapshotBytes, configPath)
  } catch {
    return false
  }
  const [now, then] = [inFile.raw, snapshot.raw]
  return restartRequired(inFile, snapshot).some((key) => {
    switch (key) {
      case 'database':
      case 'database_writer':
      case 'database_fsync':
        return true
      case 'database_max_mb':
        return now.database_max_mb !== undefined && (then.database_max_mb === undefined || then.database_max_mb > now.database_max_mb)
      case 'database_busy_timeout_ms':
        return then.database_busy_timeout_ms > now.database_busy_timeout_ms
      default:
        return false
    }
  })
}

/**
 * Whether the router at `url` would take the config in the file (`inFile`, null when it does not
 * validate; not the last known good) on a reload: it keeps auth on a public address, and a running
 * config with auth (`withAuth`; null: not known) is not replaced by one without (live-config.ts).
 */
function reloadable(inFile: Config | null, url: string, withAuth: boolean | null): boolean {
  if (!inFile) return false
  if (inFile.auth === null && withAuth === true) return false
  try {
    return openListenProblem(new URL(url).hostname.replace(/^\[(.*)\]$/, '$1'), inFile.auth !== null) === null
  } catch {
    return false
  }
}

/** Whether the config the router runs (`runningHash`) has auth, as it wrote beside the config; null when it did not say. */
function runsWithAuth(configPath: string, runningHash: string): boolean | null {
  const served = readServed(configPath)
  return served?.config_hash === runningHash ? (served.auth ?? null) : null
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
