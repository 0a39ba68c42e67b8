/**
 * Boot: the only place that reads the environment, opens files and binds a
 * port. Pure first (parse config), then effectful (open the store, finish
 * rows a crashed run left pending, build the app, serve, start the deadman
 * switch's periodic check, the archive/sync jobs and the stats fill unless
 * told not to).
 */
import type { Server } from 'bun'
import { dirname, resolve } from 'node:path'
import { createApp } from './app.ts'
import { type Clock, isoTime, systemClock } from './clock.ts'
import { type Config, openListenProblem, unsetApiKeys } from './config.ts'
import { ConfigError, JobBusyError } from './errors.ts'
import { LiveConfig, type ReloadResult } from './deadman/live-config.ts'
import { RuntimeState } from './deadman/runtime.ts'
import { noteFailedStartAfterStop, readServed, servedPath, writeServed } from './deadman/served-config.ts'
import { readServedUrl, removeServedUrl, servedUrlPath, writeServedUrl } from './deadman/served-url.ts'
import { DeadmanSwitch } from './deadman/switch.ts'
import { type Jobs, startJobs } from './jobs/scheduler.ts'
import { type StatsFill, startStatsFill } from './jobs/stats-fill.ts'
import { takeJobLock } from './jobs/job-lock.ts'
import { ensureSigningKey } from './proof/keys.ts'
import { RECOVERED_MESSAGE } from './proof/record.ts'
import { Cooldowns, changedProviders } from './router/cooldown.ts'
import { type LiveCalls, endLiveCalls } from './router/live-calls.ts'
import { listen } from './listen.ts'
import { withAbsoluteUrl } from './routes/absolute-url.ts'
import { exposedFiles } from './file-modes.ts'
import { idleBetweenRequests } from './idle-limit.ts'
import { SliceRollups } from './telemetry/slice-rollups.ts'
import { runtimeEnvProblems } from './runtime-env.ts'
import { type Store, databaseFileOf, refuseDirectory } from './telemetry/store.ts'
import { openStoreFor } from './telemetry/open-for-config.ts'
import { type RouterRole, takeRouterRole } from './deadman/router-role.ts'

export interface ServeOptions {
  configPath: string
  port?: number
  host?: string
  db?: string
  clock?: Clock
  env?: Record<string, string | undefined>
  log?: (line: string) => void
  /** Run the deadman switch's periodic check (default true; tests call `deadman.checkNow()` instead). */
  background?: boolean
  /**
   * The background jobs (archive daily, sync every sync.every). Default: on,
   * checked every 60 s. `false`: off. `{ tickMs: null }`: on without a
   * timer; call `running.jobs.tick()`.
   */
  jobs?: false | { tickMs?: number | null }
  /**
   * The stats fill (stored slices checked and filled, jobs/stats-fill.ts).
   * Default: on, every 60 s from 5 s after start. `false`: off.
   * `{ tickMs: null }`: on without a timer; call `running.statsFill.run()`.
   */
  statsFill?: false | { tickMs?: number | null }
  /** Seconds a connection may sit idle between requests before it is closed (default IDLE_CONNECTION_S). */
  idleConnectionS?: number
  /** An fsync of the database failed (store.ts, onDurabilityLost): default, the process is killed (stopAtOnce). */
  onFatal?: () => void
}

/** How long the refusals of the calls waiting on a failed fsync have to reach their clients before the process is killed. */
const FATAL_GRACE_MS = 200

/**
 * Ends the process with SIGKILL, so no exit handler closes the database (its last connection would
 * checkpoint the WAL into it past the pages a failed fsync lost): a service manager sees a crash and
 * restarts it (systemd's Restart=on-failure, launchd's KeepAlive).
 */
function stopAtOnce(): void {
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), FATAL_GRACE_MS)
}

/**
 * How long a connection may sit idle (before its first request, between
 * requests) before witness closes it: longer than clients keep idle sockets
 * (4-5 s in undici and httpx), so a client never sends into one being
 * closed, and short enough that sockets left open by clients that vanished
 * do not pile up until the open-file limit (Bun's own 10 s default cut long
 * calls, so it was off: idle sockets stayed forever).
 */
export const IDLE_CONNECTION_S = 120

export interface Running {
  server: Server<undefined>
  store: Store
  config: () => Config
  deadman: DeadmanSwitch
  /** Re-reads the config file (what SIGHUP does); throws ReloadRefusedError if it is invalid. */
  reload(): ReloadResult
  url: string
  /** The background jobs, or null when they are off. */
  jobs: Jobs | null
  /** The stats fill, or null when it is off. */
  statsFill: StatsFill | null
  /** The live file's stored stats slices, as the read endpoints use them. */
  rollups: SliceRollups
  /** Stops accepting, lets calls in flight finish (bounded), closes the database. */
  stop(graceMs?: number): Promise<void>
}

/** How long a stop waits, past its grace, for the calls it cut off to finish their rows. */
const FINISH_AFTER_CUT_MS = 2_000
/** The project directory this server's code is in, its real path (Bun loads modules by it): noted in `<config>.serve.json`. */
const CODE_DIR = dirname(import.meta.dir)
/** After the stop's own answers leave their handlers, time for Bun to write them before the cut. */
const ANSWER_WRITE_MS = 20

/** What a stop left behind, for its last log line: calls it cut past the grace, rows still pending (the next start finishes them). */
function stopSummary(cut: number, store: Store): string {
  let pending: string | null = null
  try {
    const n = store.pendingCount()
    if (n) pending = `${n} row(s) left pending, for the next start to finish`
  } catch {
    // Unreadable: how many is not known (the next start's recovery finds them all the same).
    pending = `rows left pending not known (the database cannot be read; ${store.deferredCount()} finish(es) still held)`
  }
  const parts = [cut ? `${cut} call(s) ended past the grace, each with its row` : '', pending ?? '']
  const said = parts.filter(Boolean).join('; ')
  return said ? `: ${said}` : ' cleanly: every call finished and every row written'
}


export async function serve(options: ServeOptions): Promise<Running> {
  const log = options.log ?? ((line: string) => console.error(line))
  const clock = options.clock ?? systemClock
  const oneOff = options.db !== undefined || options.port !== undefined || options.host !== undefined
  let live: LiveConfig
  try {
    live = new LiveConfig(resolve(options.configPath), clock)
  } catch (error) {
    // The router started again after a clean stop, on a config it cannot read: noted (served-config.ts).
    if (error instanceof ConfigError && !oneOff) {
      try {
        noteFailedStartAfterStop(resolve(options.configPath), CODE_DIR)
      } catch (noteError) {
        log(`witness: cannot write ${servedPath(resolve(options.configPath))} (the watchdog reads which config ran from it): ${(noteError as Error).message}`)
      }
    }
    throw error
  }
  const config = () => live.current()
  const boot = config()
  const dbPath = databaseFileOf(options.db ?? boot.databasePath)
  // Which config this server runs, for a watchdog that finds it down (served-config.ts): noted once it
  // listens, and at every reload; or when its start-up fails, as the router's does (the config's
  // listen, a database it cannot make or open, a port taken by another service). Not a start given its
  // database or socket on the command line (a one-off `serve --db COPY`, `--port`: not the router, and
  // its failure not the config's), nor one that finds the database's lock held (the router already
  // runs on it). The database it was given with --db is noted only by a server that got to listen.
  let listening = false
  // Whether this server is the config's router (router-role.ts); known once it holds its database.
  let role: RouterRole | null = null
  const markServed = (config: Config, stoppedAt?: string) => {
    if (role && !role.isRouter()) return
    const database_override = listening ? (options.db === undefined ? null : dbPath) : (readServed(live.path)?.database_override ?? null)
    try {
      writeServed(live.path, { config_hash: config.hash, database_override, code_dir: CODE_DIR, auth: config.auth !== null, ...(stoppedAt ? { stopped_at: stoppedAt } : {}) })
    } catch (error) {
      log(`witness: cannot write ${servedPath(live.path)} (the watchdog reads which config ran, and the database, from it): ${(error as Error).message}`)
    }
  }
  const startFailed = (error: unknown) => {
    if (!listening && !oneOff && !(error instanceof JobBusyError && heldByThisConfig())) markServed(boot)
  }
  // Whether the server holding the database's lock is the one on this config (it wrote the same address
  // beside both): a second start by mistake. One on another config (this config names its database by
  // mistake) is this config's failure.
  const heldByThisConfig = () => {
    const atDatabase = readServedUrl(dbPath)
    return atDatabase !== null && atDatabase === readServedUrl(live.path)
  }
  live.onSwap((next) => markServed(next))
  const host = options.host ?? boot.raw.listen.host
  const port = options.port ?? boot.raw.listen.port
  let serverLock: ReturnType<typeof takeJobLock>
  try {
    // The config checks its own listen.host; a host given on the command line is checked here.
    const openProblem = openListenProblem(host, boot.auth !== null)
    if (openProblem) {
      // Blame the flag when it was the flag (the file's own listen.host is checked with the file).
      throw options.host !== undefined
        ? new ConfigError('given on the command line', [{ path: '--host', message: openProblem }])
        : new ConfigError(boot.path ?? '(inline)', [{ path: 'listen.host', message: openProblem }])
    }
    // One server per database: a second one would take the first one's calls in flight for a
    // crashed run's and finish them as errors. The lock goes before recovery (and a directory
    // given for the database is refused before it, so no lock file is left beside it).
    refuseDirectory(dbPath)
    serverLock = takeJobLock('serve', `${dbPath}.serve.lock`, () => clock.now())
  } catch (error) {
    startFailed(error)
    throw error
  }
  role = takeRouterRole(live.path, oneOff, (message) => log(`witness: ${message}`), () => clock.now())
  const routerRole = role
  live.boundHost = host
  // Where this server really listens, for the watchdog, beside the database and beside the config:
  // the file's listen (and database) may have changed since (a reload cannot move the socket or the
  // file), and the watchdog must probe this server, not those.
  const urlBeside = [dbPath, live.path]
  let url = ''
  const removeUrlFiles = () => {
    for (const beside of urlBeside) {
      try {
        removeServedUrl(beside, url)
      } catch {
        // gone already, or the folder is not ours to write: the next start writes it over
      }
    }
  }
  let opened: Store | undefined
  try {
    const store = openStoreFor(boot, options.db, {
      checkpoints: 'thread',
      onCheckpointsLost: (why) => log(`witness: ${why}; the writer checkpoints the WAL after its commits again`),
      onFinishedLate: (id) => log(`witness: row ${id} is finished at last`),
      onDurabilityLost: (why) => {
        log(`witness: FATAL: the database can no longer be made durable: ${why}. Rows written since may not be on disk, so nothing is acknowledged from now on, and witness stops at once without closing the database; its next start reads the WAL back in and copies it into the database file (a service manager restarts it; the rows of the calls cut here are finished then)`)
        ;(options.onFatal ?? stopAtOnce)()
      },
    })
    opened = store
    const recovered = store.recoverPending(
      `${RECOVERED_MESSAGE} (recovered at start-up ${isoTime(clock.now())})`,
    )
    if (recovered > 0) log(`witness: finished ${recovered} row(s) left pending by a previous run`)
    const signing = await ensureSigningKey(boot.proof.keyPath)
    if (signing.created) log(`witness: created signing key ${config().proof.keyPath} (key id ${signing.key.keyId})`)

    const inFlight = { count: 0 }
    // Set when the stop cuts the connections still open: a call ended then was stopped by witness; one
    // whose client left earlier in the grace is recorded as the client leaving.
    let cutting = false
    const liveCalls: LiveCalls = new Set()
    const env = options.env ?? process.env
    const warn = (message: string) => log(`witness: ${message}`)
    const runtime = new RuntimeState(clock)
    // One set of stored slices for the reads and the fill, so they never store a slice twice at once.
    const rollups = new SliceRollups(store.reader, (side) => store.write(side), () => clock.now())
    const deadman = new DeadmanSwitch({ live, store, clock, runtime, env, log: warn, isRouter: () => routerRole.isRouter() })
    deadman.resume()
    // One breaker for the process's life, reading the live policy: cooldowns survive a reload, but
    // for the providers it changed (a rollback that mends a key must not find it still skipped).
    const cooldowns = new Cooldowns({
      get failures() {
        return config().policy.cooldown_failures
      },
      get cooldownMs() {
        return config().policy.cooldown_s * 1000
      },
      clock,
    })
    live.onSwap((next, previous) => cooldowns.forgetProviders(changedProviders(previous.providers, next.providers)))
    const app = createApp({
      store,
      clock,
      cooldowns,
      config,
      env,
      inFlight,
      warn,
      runtime,
      deadman,
      rollups,
      stopping: () => cutting,
      liveCalls,
    })

    const idleS = options.idleConnectionS ?? IDLE_CONNECTION_S
    const server = listen(host, port, {
      idleTimeout: idleS,
      // Bun's own cap answers an empty 413 and is fixed at start-up, so it is set out of reach:
      // the body guard enforces the live max_body_mb with witness's error (an unread body is not buffered).
      maxRequestBodySize: Number.MAX_SAFE_INTEGER,
      // Never Bun's development error page (it shows source code); app.onError answers every error.
      development: false,
      // The idle limit holds between requests only (idle-limit.ts); body_timeout_ms guards a body.
      fetch: idleBetweenRequests(idleS, (req, srv) => app.fetch(withAbsoluteUrl(req, url), srv)),
    })
    url = server.url.origin // brackets an IPv6 address (http://[::1]:8787)
    listening = true
    markServed(live.current())
    // A one-off's address is no news of the router's: only the file beside its own database is written.
    for (const beside of routerRole.isRouter() ? urlBeside : urlBeside.slice(0, 1)) {
      try {
        writeServedUrl(beside, url)
      } catch (error) {
        warn(`cannot write ${servedUrlPath(beside)} (the watchdog reads where the server listens from it): ${(error as Error).message}`)
      }
    }
    const jobs =
      options.jobs === false
        ? null
        : startJobs({ config, livePath: store.path, keyPath: boot.proof.keyPath, clock, env, log, tickMs: options.jobs?.tickMs })
    const statsFill = options.statsFill === false ? null : startStatsFill({ store, rollups, clock, log, tickMs: options.statsFill?.tickMs })
    log(`witness: listening on ${url} (pid ${process.pid}, config ${boot.path}, database ${store.path}, chains: ${[...boot.chains.keys()].join(', ')})`)
    // Bun reads these at start only (runtime-env.ts): the process's own environment, not options.env.
    for (const problem of runtimeEnvProblems(process.env)) warn(problem)
    for (const missing of unsetApiKeys(boot, env)) warn(missing)
    const privateFiles = [
      ...['', '-wal', '-shm'].map((end) => ({ path: `${store.path}${end}`, what: 'the database' })),
      { path: boot.proof.keyPath, what: 'the signing key', groupToo: true },
    ]
    for (const exposed of exposedFiles(privateFiles)) warn(`WARNING: ${exposed}`)
    if (options.background ?? true) deadman.start()

    return {
      server,
      store,
      config,
      deadman,
      reload: () => deadman.reload(),
      url,
      jobs,
      statsFill,
      rollups,
      async stop(graceMs = 10_000) {
        deadman.stop()
        // Settles once every request has been answered, its answer written out to the last byte.
        const drained = server.stop(false)
        const deadline = Date.now() + graceMs
        // A running job (a git push, an archive batch) gets the same grace as calls in flight.
        if (jobs) await Promise.race([jobs.stop(), Bun.sleep(graceMs)])
        if (statsFill) await Promise.race([statsFill.stop(), Bun.sleep(graceMs)])
        // A rollback_command running in a check gets the grace too, so its row is written; one still
        // running after it is killed, and recorded by the next start (its agent is left rolling_back).
        await Promise.race([deadman.idle(), Bun.sleep(Math.max(0, deadline - Date.now()))])
        // Past the grace, no rollback or alert command outlives witness (a rollback's row is then written by the next start).
        deadman.endCommands()
        while (inFlight.count > 0 && Date.now() < deadline) await Bun.sleep(20)
        // An answer still being written (a large one, a client reading slowly) is not cut short: its
        // client would send the call again, and pay twice. It has what is left of the grace.
        if (inFlight.count === 0) await Promise.race([drained, Bun.sleep(Math.max(0, deadline - Date.now()))])
        cutting = true
        const cut = liveCalls.size
        // Calls still running are ended by witness itself: a stream with an error event the client can
        // read, a call waiting for its provider with a 503 `witness_stopped`; each with its row. Their
        // answers get a moment to be written, then every connection still open is cut.
        const answerBy = Date.now() + FINISH_AFTER_CUT_MS
        await Promise.race([endLiveCalls(liveCalls), Bun.sleep(FINISH_AFTER_CUT_MS)])
        while (inFlight.count > 0 && Date.now() < answerBy) await Bun.sleep(10)
        await Promise.race([drained, Bun.sleep(ANSWER_WRITE_MS)])
        server.stop(true)
        // Cutting the connections ends whatever still runs: each finishes its row (the client is gone)
        // within moments, so that is waited for, briefly, even when the grace is spent. A row still
        // pending after it is finished by the next start's recovery.
        const finishBy = Math.max(deadline, Date.now() + FINISH_AFTER_CUT_MS)
        while (inFlight.count > 0 && Date.now() < finishBy) await Bun.sleep(10)
        await store.drain(Math.max(0, finishBy - Date.now()))
        warn(`stopped${stopSummary(cut, store)}`)
        store.close()
        // Stopped on purpose: a watchdog that finds the router down does not roll its config back for it.
        markServed(live.current(), isoTime(clock.now()))
        removeUrlFiles()
        routerRole.release()
        serverLock.release()
      },
    }
  } catch (error) {
    startFailed(error)
    opened?.close()
    removeUrlFiles()
    routerRole.release()
    serverLock.release()
    throw error
  }
}
