/**
 * Which server on a config is its router. Only the router notes, for the watchdog, which config ran
 * and where it listens (`<config>.serve.json`, `<config>.serve.url`), promotes the last known good,
 * and runs the deadman's checks of agents (their rollback_commands) and of dropped tokens.
 *
 * A server started as the config says (no `--db`, `--port` or `--host`) is the router: it holds
 * `<config>.router.lock` while it runs. One given any of those flags (a one-off: `serve --db COPY
 * --port 9999` to look at a copy) is the router only while no server holds that lock: the router
 * itself when none runs, as a router started with `serve --db` always was, and a one-off while the
 * router runs, whatever it is given. It looks again each time it would act, so a router started
 * after it takes over. The lock is an OS lock (job-lock.ts): a killed router's is gone with it.
 */
import { JobBusyError } from '../errors.ts'
import { type JobLock, jobLockHeld, takeJobLock } from '../jobs/job-lock.ts'

export interface RouterRole {
  /** Whether this server acts as the config's router now. */
  isRouter(): boolean
  release(): void
}

/** How long a one-off's answer stands before it looks at the lock again. */
const LOOK_EVERY_MS = 1_000

function routerLockPath(configPath: string): string {
  return `${configPath}.router.lock`
}

/**
 * `oneOff`: started with `--db`, `--port` or `--host`. `log` says when this server stops or starts
 * acting as the router, and why; `now` times the lock's holder note.
 */
export function takeRouterRole(configPath: string, oneOff: boolean, log: (message: string) => void, now: () => number = Date.now): RouterRole {
  const path = routerLockPath(configPath)
  if (!oneOff) {
    let lock: JobLock
    try {
      lock = takeJobLock('serve', path, now, `the router on ${configPath}`)
    } catch (error) {
      if (!(error instanceof JobBusyError)) {
        // Beside the config may be read-only to it: it acts as the router, as before there was a lock.
        log(`cannot take ${path} (${(error as Error).message}): this server acts as the router on ${configPath}, and a one-off started beside it cannot tell it is one`)
        return { isRouter: () => true, release() {} }
      }
      // Another server on this config without flags: its database was changed in the file since.
      log(`${error.message.replace(/; nothing done$/, '')}: this server runs as a one-off (it does not note its config for the watchdog, promote, or check agents)`)
      return oneOffRole(path, log)
    }
    return { isRouter: () => true, release: () => lock.release() }
  }
  return oneOffRole(path, log)
}

function oneOffRole(path: string, log: (message: string) => void): RouterRole {
  let answer: boolean | null = null
  let lookedAt = -Infinity
  return {
    isRouter() {
      // Real time, not the server's clock (tests step that one by hand): a cache, not a deadline.
      if (performance.now() - lookedAt < LOOK_EVERY_MS && answer !== null) return answer
      lookedAt = performance.now()
      const router = !jobLockHeld(path)
      if (router !== answer && answer !== null) {
        log(router ? 'the router on this config has stopped: this server acts as its router' : 'a router has started on this config: this server runs as a one-off (it does not note its config for the watchdog, promote, or check agents)')
      } else if (!router && answer === null) {
        log('a router runs on this config: this server runs as a one-off (it does not note its config for the watchdog, promote, or check agents)')
      }
      answer = router
      return router
    },
    release() {},
  }
}
