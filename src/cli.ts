#!/usr/bin/env bun
/**
 * The command line: `witness <command> [options]`.
 *   serve [--config PATH] [--port N] [--db PATH]   run the router
 *   init [--db PATH] [--config PATH]               create the database (safe to repeat)
 *   check-config [--config PATH]                   validate a config file
 *   sim [--port N]                                 run the provider simulator
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfig } from './config.ts'
import { ConfigError } from './errors.ts'
import { configPathFrom, openStoreFor, serve } from './main.ts'
import { startSimulator } from './sim/server.ts'
import { openStore } from './telemetry/store.ts'
import { SCHEMA_VERSION } from './telemetry/schema.ts'

const USAGE = `usage: witness <command> [options]

commands:
  serve [--config PATH] [--port N] [--db PATH]   run the router (default config: $WITNESS_CONFIG or ./witness.yaml)
  init [--db PATH] [--config PATH]               create the database with its schema (safe to run twice)
  check-config [--config PATH]                   validate a config file and print its hash
  sim [--port N]                                 run the provider simulator on 127.0.0.1
`

type Command = (args: string[]) => Promise<number>

const commands: Record<string, Command> = {
  async serve(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' }, port: { type: 'string' }, db: { type: 'string' } } })
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
    running = await serve({
      configPath: configPathFrom(values.config),
      port: values.port === undefined ? undefined : portOf(values.port),
      db: values.db,
    })
    return new Promise<number>(() => {}) // serve until signalled
  },

  async init(args) {
    const { values } = parseArgs({ args, options: { db: { type: 'string' }, config: { type: 'string' } } })
    const configPath = configPathFrom(values.config)
    let store
    if (values.db) store = openStore(values.db, { sync: 'full', busyTimeoutMs: 5000 })
    else if (existsSync(configPath)) store = openStoreFor(loadConfig(configPath))
    else store = openStore('data/witness.db', { sync: 'full', busyTimeoutMs: 5000 })
    console.log(`witness: database ${store.path} ready (schema version ${SCHEMA_VERSION})`)
    store.close()
    return 0
  },

  async 'check-config'(args) {
    const { values } = parseArgs({ args, options: { config: { type: 'string' } } })
    const config = loadConfig(configPathFrom(values.config))
    console.log(`witness: ${config.path} is valid (sha256 ${config.hash}; chains: ${[...config.chains.keys()].join(', ')})`)
    return 0
  },

  async sim(args) {
    const { values } = parseArgs({ args, options: { port: { type: 'string' } } })
    const sim = startSimulator({ port: values.port === undefined ? 9100 : portOf(values.port) })
    console.error(`witness sim: OpenAI at ${sim.url}/v1/chat/completions, Anthropic at ${sim.url}/v1/messages`)
    return new Promise<number>(() => {})
  },
}

function portOf(text: string): number {
  const port = Number(text)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got "${text}"`)
  return port
}

class UsageError extends Error {
  override name = 'UsageError'
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log(USAGE)
    return name ? 0 : 2
  }
  const command = commands[name]
  if (!command) {
    console.error(`witness: unknown command "${name}"\n${USAGE}`)
    return 2
  }
  try {
    return await command(rest)
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`witness: ${error.message}`)
      return 2
    }
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`witness: ${(error as Error).message}\n${USAGE}`)
      return 2
    }
    throw error
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2))
}
