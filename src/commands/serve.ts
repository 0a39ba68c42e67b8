/** `witness serve [--config PATH] [--port N] [--db PATH]`: run the router until SIGINT/SIGTERM; SIGHUP reloads the config. */
import { parseArgs } from 'node:util'
import { configPathFrom, serve } from '../main.ts'
import { type Command, parsed, portOf } from './args.ts'

export const serveCommand: Command = {
  summary: 'serve [--config PATH] [--port N] [--db PATH]   run the router (config: --config, $WITNESS_CONFIG or ./witness.yaml)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' }, port: { type: 'string' }, db: { type: 'string' } } }))
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
      db: values.db,
    })
    return new Promise<number>(() => {}) // serve until signalled
  },
}
