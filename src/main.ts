/**
 * Boot: the only place that reads the environment, opens files and binds a
 * port. Pure first (parse config), then effectful (open the store, finish
 * rows a crashed run left pending, build the app, serve).
 */
import type { Server } from 'bun'
import { createApp } from './app.ts'
import { type Clock, isoTime, systemClock } from './clock.ts'
import { type Config, loadConfig, openListenProblem } from './config.ts'
import { ConfigError } from './errors.ts'
import { Cooldowns } from './router/cooldown.ts'
import { type Store, openStore } from './telemetry/store.ts'

export interface ServeOptions {
  configPath: string
  port?: number
  host?: string
  db?: string
  clock?: Clock
  env?: Record<string, string | undefined>
  log?: (line: string) => void
}

export interface Running {
  server: Server<undefined>
  store: Store
  config: () => Config
  url: string
  /** Stops accepting, lets calls in flight finish (bounded), closes the database. */
  stop(graceMs?: number): Promise<void>
}

/** The path of the config file: --config, then WITNESS_CONFIG, then ./witness.yaml. */
export function configPathFrom(flag: string | undefined): string {
  return flag ?? process.env.WITNESS_CONFIG ?? 'witness.yaml'
}

export function openStoreFor(config: Config, dbOverride?: string): Store {
  return openStore(dbOverride ?? config.databasePath, {
    sync: config.raw.database_sync,
    busyTimeoutMs: config.raw.database_busy_timeout_ms,
    maxMb: config.raw.database_max_mb,
  })
}

export async function serve(options: ServeOptions): Promise<Running> {
  const log = options.log ?? ((line: string) => console.error(line))
  const clock = options.clock ?? systemClock
  let config = loadConfig(options.configPath)
  const host = options.host ?? config.raw.listen.host
  const port = options.port ?? config.raw.listen.port
  // The config checks its own listen.host; a host given on the command line is checked here.
  const openProblem = openListenProblem(host, config.auth !== null)
  if (openProblem) throw new ConfigError(config.path ?? '(inline)', [{ path: 'listen.host', message: openProblem }])
  const store = openStoreFor(config, options.db)
  const recovered = store.recoverPending(
    `router stopped before the call finished (recovered at start-up ${isoTime(clock.now())})`,
  )
  if (recovered > 0) log(`witness: finished ${recovered} row(s) left pending by a previous run`)

  const inFlight = { count: 0 }
  const app = createApp({
    store,
    clock,
    cooldowns: new Cooldowns({
      failures: config.policy.cooldown_failures,
      cooldownMs: config.policy.cooldown_s * 1000,
      clock,
    }),
    config: () => config,
    env: options.env ?? process.env,
    inFlight,
    warn: (message) => log(`witness: ${message}`),
  })

  const server = Bun.serve({
    hostname: host,
    port,
    // Inference calls can take minutes; the body limit guards the rest.
    idleTimeout: 0,
    maxRequestBodySize: config.maxBodyBytes + 1024 * 1024,
    fetch: (req, srv) => app.fetch(req, srv),
  })
  const url = `http://${server.hostname}:${server.port}`
  log(`witness: listening on ${url} (config ${config.path}, database ${store.path}, chains: ${[...config.chains.keys()].join(', ')})`)

  return {
    server,
    store,
    config: () => config,
    url,
    async stop(graceMs = 10_000) {
      server.stop(false)
      const deadline = Date.now() + graceMs
      while (inFlight.count > 0 && Date.now() < deadline) await Bun.sleep(20)
      server.stop(true)
      store.close()
    },
  }
}
