/**
 * `witness serve [--config PATH] [--port N] [--host H] [--db PATH]`: run the router until SIGINT/SIGTERM;
 * SIGHUP reloads the config. `--port`, `--host` and `--db` override the config's (a one-off server,
 * not the config's router: see deadman/router-role.ts).
 */
import { parseArgs } from 'node:util'
import { LISTEN_HOST_HELP, isListenHost } from '../config-schema.ts'
import { configPathFrom } from '../config-file.ts'
import { serve } from '../main.ts'
import { type Command, UsageError, dbFlagOf, parsed, portOf } from './args.ts'

export const serveCommand: Command = {
  summary: 'serve [--config PATH] [--port N] [--host H] [--db PATH]   run the router (config: --config, $WITNESS_CONFIG or ./witness.yaml)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' }, port: { type: 'string' }, host: { type: 'string' }, db: { type: 'string' } } }))
    // The config's listen.host is checked by the config; one given here, here (and, like it, for loopback by serve).
    if (values.host !== undefined && !isListenHost(values.host)) throw new UsageError(`--host must be ${LISTEN_HOST_HELP}, got ${JSON.stringify(values.host.slice(0, 100))}`)
    // Signal handlers go in before the server starts, so a signal during start-up still stops it cleanly.
    let running: Awaited<ReturnType<typeof serve>> | undefined
    let stopping = false
    const shutdown = async (signal: string) => {
      if (stopping) return
      stopping = true
      console.error(`witness: ${signal}, finishing calls in flight`)
      await running?.stop()
      process.exit(0)
    }
    process.on('SIGINT', () => void shutdown('SIGINT'))
    process.on('SIGTERM', () => void shutdown('SIGTERM'))
    // A refused reload is logged by the deadman switch; the running config stays.
    process.on('SIGHUP', () => {
      if (!running) console.error('witness: SIGHUP during start-up ignored')
      else {
        try {
          running.reload()
        } catch {
          // already logged with every problem
        }
      }
    })
    running = await serve({
      configPath: configPathFrom(values.config),
      port: values.port === undefined ? undefined : portOf(values.port),
      host: values.host,
      db: dbFlagOf(values.db),
    })
    return new Promise<number>(() => {}) // serve until signalled
  },
}
