/**
 * What a long-running `witness serve` keeps per name a client chooses: the real server in its own
 * process (open mode, no auth: callers name themselves), the simulator upstream, and phases of
 * requests that each bring `--n` new names: agents on inference requests (X-Agent-Name and the
 * OpenAI `user` field), agents' heartbeats (POST /heartbeat), unknown chain (model) names, and, for
 * a baseline, the same agent every time. After each phase: the server's resident memory (VmRSS, and
 * its high-water mark VmHWM), the size of GET /metrics and of GET /deadman and of the dashboard's
 * list of names (and how long those two took), and the rows of deadman_agent.
 *
 *   bun bench/client-keys.ts [--n 20000] [--concurrency 32]
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startSimulator } from '../src/sim/server.ts'
import { spawnWitness } from '../test/support/process.ts'
import { writeConfigFile } from '../test/support/witness.ts'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { n: { type: 'string', default: '20000' }, concurrency: { type: 'string', default: '32' } } })
const N = Number(values.n)
const CONCURRENCY = Number(values.concurrency)

const dir = mkdtempSync(join(tmpdir(), 'witness-client-keys-'))
const sim = startSimulator({ keep: 0 })
const configPath = writeConfigFile(join(dir, 'witness.yaml'), {
  database_sync: 'normal',
  providers: { sim: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'SIM_KEY' } },
  chains: { default: [{ provider: 'sim', model: 'sim-model' }] },
  retention: { keep_days: 30, archive_dir: './archive' },
})
const { proc, url } = await spawnWitness(configPath, { SIM_KEY: 'sk-sim-0123456789abcdef' })
// Drained, or a full pipe would stop the server.
void (async () => {
  const reader = proc.stderr.getReader()
  while (!(await reader.read()).done);
})()

function memory(): string {
  const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8')
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0)
  return `RSS ${(kb('VmRSS') / 1024).toFixed(0)} MB (peak ${(kb('VmHWM') / 1024).toFixed(0)} MB)`
}

async function measure(label: string): Promise<void> {
  const metrics = await (await fetch(`${url}/metrics`)).text()
  const asked = performance.now()
  const deadman = await (await fetch(`${url}/deadman`)).text()
  const deadmanMs = performance.now() - asked
  const namesAsked = performance.now()
  const names = await (await fetch(`${url}/dashboard/names`)).text()
  const namesMs = performance.now() - namesAsked
  const db = new Database(join(dir, 'witness.db'), { readonly: true })
  const agents = (db.query('SELECT count(*) AS n FROM deadman_agent').get() as { n: number }).n
  db.close()
  console.log(
    `${label.padEnd(44)} ${memory()}; /metrics ${metrics.length} bytes (${metrics.split('\n').length} lines); /deadman ${deadman.length} bytes in ${deadmanMs.toFixed(0)} ms; /dashboard/names ${names.length} bytes in ${namesMs.toFixed(0)} ms; deadman_agent ${agents} rows`,
  )
}

async function phase(label: string, send: (i: number) => Promise<Response>): Promise<void> {
  const started = performance.now()
  let next = 0
  const statuses = new Map<number, number>()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < N) {
        const response = await send(next++)
        await response.arrayBuffer()
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1)
      }
    }),
  )
  Bun.gc(true)
  await Bun.sleep(2000)
  await measure(`${label} (${[...statuses].map(([s, n]) => `${n}x${s}`).join(' ')}, ${((performance.now() - started) / 1000).toFixed(0)} s)`)
}

const chat = (agent: string, model = 'default', user?: string) =>
  fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-agent-name': agent },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], ...(user ? { user } : {}) }),
  })

try {
  await measure('at start')
  await phase('one agent, calls', () => chat('ezra'))
  await phase('one agent, calls again', () => chat('ezra'))
  await phase('a new agent name per call', (i) => chat(`agent-${i}-${crypto.randomUUID()}`, 'default', `user-${i}`))
  await phase('a new unknown chain (model) per call', (i) => chat('ezra', `model-${i}-${crypto.randomUUID()}`))
  await phase('a new agent name per heartbeat', (i) =>
    fetch(`${url}/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: `beat-${i}-${crypto.randomUUID()}`, config_hash: 'abc123' }) }),
  )
  await phase('a new agent name per heartbeat, again', (i) =>
    fetch(`${url}/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: `beat2-${i}-${crypto.randomUUID()}`, config_hash: 'abc123' }) }),
  )
} finally {
  proc.kill('SIGTERM')
  await proc.exited
  await sim.stop()
  rmSync(dir, { recursive: true, force: true })
}
