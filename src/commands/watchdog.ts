/**
 * `witness watchdog [--config PATH] [--url URL] [--db PATH] [--failures N] [--every DURATION]`:
 * checks the router's GET /heartbeat from outside it, and after N failed
 * checks in a row rolls its config back to last known good, restarts it and
 * records the rollback (src/deadman/watchdog.ts). Once (for a systemd timer
 * or cron), or in a loop with --every. Sends `Authorization: Bearer
 * $WITNESS_TOKEN` when that variable is set.
 */
import { existsSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { processCommandGroups } from '../deadman/command.ts'
import { watchOnce } from '../deadman/watchdog.ts'
import { watchdogStatePath } from '../deadman/watchdog-state.ts'
import { configPathFrom } from '../config-file.ts'
import { type Command, UsageError, countOf, dbFlagOf, durationMsOf, parsed } from './args.ts'

export const watchdogCommand: Command = {
  summary: 'watchdog [--config PATH] [--url URL] [--db PATH] [--failures N] [--every DURATION] [--state PATH] [--timeout DURATION] [--wait DURATION]\n' +
    '                                                 check /heartbeat; after N failures in a row roll the config back and restart',
  // 1 means "failed, below the threshold": a watchdog that crashed must not look like that.
  failureExitCode: 2,
  async run(args) {
    const { values } = parsed(() =>
      parseArgs({
        args,
        options: {
          config: { type: 'string' },
          url: { type: 'string' },
          db: { type: 'string' },
          failures: { type: 'string' },
          every: { type: 'string' },
          state: { type: 'string' },
          timeout: { type: 'string' },
          wait: { type: 'string' },
        },
      }),
    )
    const configPath = resolve(configPathFrom(values.config))
    const db = dbFlagOf(values.db)
    const options = {
      configPath,
      // The router's base URL; one given with /heartbeat on it (a natural slip) means the same.
      url: values.url?.replace(/\/+$/, '').replace(/\/heartbeat$/, ''),
      // The router's database, as given to `serve --db`: where a row the router cannot take is written.
      dbPath: db === undefined ? undefined : resolve(db),
      failures: values.failures === undefined ? 3 : countOf('--failures', values.failures),
      statePath: values.state ? resolve(values.state) : watchdogStatePath(configPath),
      token: process.env.WITNESS_TOKEN || undefined,
      requestTimeoutMs: values.timeout === undefined ? 5_000 : durationMsOf('--timeout', values.timeout),
      waitMs: values.wait === undefined ? 5_000 : durationMsOf('--wait', values.wait),
      env: process.env,
      log: (line: string) => console.error(`witness watchdog: ${line}`),
    }
    if (values.url !== undefined && !/^https?:\/\/[^/]+/.test(values.url)) throw new UsageError(`--url must be an http(s) URL, got "${values.url}"`)
    // The state is a file: a directory there would get lock and temp files put beside it, then fail.
    if (existsSync(options.statePath) && statSync(options.statePath).isDirectory()) throw new UsageError(`--state must be a file, and ${options.statePath} is a directory`)
    const owner = rootOverAnotherUsersConfig(configPath)
    if (owner !== null) {
      throw new UsageError(
        `run as root, and ${configPath} belongs to uid ${owner}: the state and lock files a root watchdog writes beside it would lock that user's watchdog out for good; run it as that user (sudo -u '#${owner}' witness watchdog …, or through the service's own unit)`,
        { showUsage: false },
      )
    }
    // Stopped while a restart or alert command runs (a timeout, cron's kill, Ctrl-C): that command's
    // process group goes too (a rollback begun is finished by the next run, from the state file).
    for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
      process.once(signal, () => {
        processCommandGroups.end()
        options.log(`stopped (${signal}), ending the commands it ran`)
        process.exit(code)
      })
    }
    if (values.every === undefined) return watchOnce(options)
    const everyMs = durationMsOf('--every', values.every)
    while (true) {
      // A round that fails (its state file cannot be written: a full disk) is said, and the loop goes on:
      // a watchdog that quietly ends watches nothing.
      await watchOnce(options).catch((error) => options.log(`this round failed: ${(error as Error).message}`))
      await Bun.sleep(everyMs)
    }
  },
}

/** The uid owning the config when this runs as root and the config is another user's (else null). */
function rootOverAnotherUsersConfig(configPath: string): number | null {
  if (process.getuid?.() !== 0 || !existsSync(configPath)) return null
  const uid = statSync(configPath).uid
  return uid === 0 ? null : uid
}
