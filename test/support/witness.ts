/**
 * A real witness for tests: the config is written to a temp file (JSON is
 * YAML), booted through the same `serve` as production on port 0, with a
 * temp database and an injected environment and clock.
 */
import { afterAll } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Clock } from '../../src/clock.ts'
import { type Running, serve } from '../../src/main.ts'
import { tempDir } from './temp.ts'

export interface TestWitness extends Running {
  dir: string
  dbPath: string
  configPath: string
  logs: string[]
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>
  infer(body: Record<string, unknown>, headers?: Record<string, string>): Promise<Response>
}

export interface StartOptions {
  env?: Record<string, string | undefined>
  clock?: Clock
  dir?: string
  /** Run the deadman switch's periodic check (default off: tests call `deadman.checkNow()`). */
  background?: boolean
  /** Background jobs (archive, sync); off unless asked for. */
  jobs?: false | { tickMs?: number | null }
  /** The stats fill; off unless asked for. */
  statsFill?: false | { tickMs?: number | null }
  /** Seconds a client connection may sit idle between requests (default: the server's). */
  idleConnectionS?: number
}

export async function startWitness(config: Record<string, unknown>, options: StartOptions = {}): Promise<TestWitness> {
  const dir = options.dir ?? tempDir()
  const configPath = writeConfigFile(join(dir, 'witness.yaml'), config)
  const logs: string[] = []
  const running = await serve({
    configPath,
    port: 0,
    env: options.env ?? {},
    clock: options.clock,
    log: (l) => logs.push(l),
    background: options.background ?? false,
    jobs: options.jobs ?? false,
    statsFill: options.statsFill ?? false,
    idleConnectionS: options.idleConnectionS,
    // Not the test runner killed: the FATAL line is in `logs`, and the store refuses every write.
    onFatal: () => {},
  })
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${running.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })
  return {
    ...running,
    dir,
    dbPath: running.store.path,
    configPath,
    logs,
    post,
    infer: (body, headers) => post('/v1/infer', { agent: 'tester', messages: [{ role: 'user', content: 'hello there' }], ...body }, headers),
  }
}

/** Writes a config file as startWitness does (JSON is YAML; the database beside it); returns its path. */
export function writeConfigFile(path: string, config: Record<string, unknown>): string {
  writeFileSync(path, JSON.stringify({ database: './witness.db', ...config }, null, 2))
  return path
}

/** A config whose providers all point at a simulator. */
export function simConfig(simUrl: string, chains: Record<string, unknown[]>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providers: {
      sim: { type: 'openai', base_url: `${simUrl}/v1` },
      sim2: { type: 'openai', base_url: `${simUrl}/v1` },
      simant: { type: 'anthropic', base_url: `${simUrl}/v1` },
      ...((extra.providers as Record<string, unknown>) ?? {}),
    },
    chains,
    policy: { backoff_min_ms: 5, backoff_max_ms: 20, ...((extra.policy as Record<string, unknown>) ?? {}) },
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'providers' && k !== 'policy')),
  }
}

/** A clock tests can move forward. */
export function manualClock(startMs = Date.parse('2026-11-25T12:00:00.000Z')): Clock & { advance(ms: number): void } {
  let offset = 0
  return {
    now: () => startMs + offset,
    monotonic: () => performance.now() + offset,
    advance(ms: number) {
      offset += ms
    },
  }
}

/**
 * One witness for a test file, started on first use with `config()`, and stopped with the file's
 * loopback `upstream` once its tests are done.
 */
export function witnessOnce(config: () => Record<string, unknown>, upstream: { stop(force?: boolean): unknown }): () => Promise<TestWitness> {
  let w: TestWitness | undefined
  afterAll(async () => {
    await w?.stop(0)
    upstream.stop(true)
  })
  return async () => (w ??= await startWitness(config()))
}
