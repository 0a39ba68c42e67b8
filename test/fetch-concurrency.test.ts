/**
 * How Bun's fetch is set up for witness's calls (src/runtime-env.ts).
 *
 * Bun runs at most BUN_CONFIG_MAX_HTTP_REQUESTS `fetch` calls at once (256
 * unless set when the process starts), across every host. A call past it
 * waited inside Bun after its pending row was committed: with 300 agents on
 * slow calls, a call to another provider timed out without ever reaching it,
 * and its row said it was called. witness started as `npm start` starts it
 * runs them all; started without the setting, it says so.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BUN, ROOT, spawnWitness, waitForLine } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { tempDir } from './support/temp.ts'

const CALLS = 300

/** A provider that holds every call until released, counting those it holds. */
function holdingProvider() {
  let held = 0
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      await req.text()
      held++
      await released
      return Response.json({ id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] })
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, held: () => held, release, stop: () => server.stop(true) }
}

/** One POST on its own raw connection (the test's own fetch would queue past 256 too); resolves with the status line. */
function rawPost(url: string, body: string): Promise<string> {
  const { hostname, port } = new URL(url)
  return new Promise((resolve, reject) => {
    let text = ''
    Bun.connect({
      hostname,
      port: Number(port),
      socket: {
        open(socket) {
          socket.write(`POST /v1/infer HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
        },
        data(_, chunk) {
          text += chunk.toString()
        },
        close() {
          resolve(text.split('\r\n')[0] ?? '')
        },
        error(_, error) {
          reject(error)
        },
      },
    }).catch(reject)
  })
}

let provider: ReturnType<typeof holdingProvider>
beforeAll(() => {
  provider = holdingProvider()
})
afterAll(() => provider.stop())

function writeConfig(dir: string): string {
  const path = join(dir, 'witness.yaml')
  writeFileSync(path, JSON.stringify({ database: join(dir, 'witness.db'), providers: { slow: { type: 'openai', base_url: `${provider.url}/v1` } }, chains: { default: [{ provider: 'slow', model: 'm', retries: 0 }] } }))
  return path
}

test(`started as npm start starts it, witness has all ${CALLS} calls at their provider at once, not 256`, async () => {
  const dir = tempDir()
  const configPath = writeConfig(dir)
  const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start
  // The start script as npm runs it (sh), with the project's Bun first on PATH as npm puts it.
  const proc = Bun.spawn(['sh', '-c', `${start} --config "$1" --port 0`, 'sh', configPath], {
    cwd: ROOT,
    env: { PATH: `${join(ROOT, 'node_modules/.bin')}:${process.env.PATH ?? ''}` },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  try {
    const [, url] = await waitForLine(proc.stderr, /listening on (http:\/\/[\d.]+:\d+)/)
    const body = JSON.stringify({ agent: 'crowd', messages: [{ role: 'user', content: 'wait' }] })
    const answers = Array.from({ length: CALLS }, () => rawPost(url!, body))
    const deadline = Date.now() + 15_000
    while (provider.held() < CALLS && Date.now() < deadline) await Bun.sleep(50)
    const heldAtOnce = provider.held()
    provider.release()
    const statuses = await Promise.all(answers)
    expect(heldAtOnce).toBe(CALLS)
    expect(statuses.filter((s) => s.startsWith('HTTP/1.1 200')).length).toBe(CALLS)
    expect(readRows(join(dir, 'witness.db')).filter((r) => r.status === 'success').length).toBe(CALLS)
  } finally {
    proc.kill()
    await proc.exited
  }
}, 60_000)

test('started without the setting, witness says at once what it limits and how to set it', async () => {
  const dir = tempDir()
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', writeConfig(dir), '--port', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '' },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  try {
    const [line] = await waitForLine(proc.stderr, /BUN_CONFIG_MAX_HTTP_REQUESTS[^\n]*\n/)
    expect(line).toContain('BUN_CONFIG_MAX_HTTP_REQUESTS is not set: Bun will run at most 256 upstream calls at once and queue the rest')
    expect(line).toContain('BUN_CONFIG_MAX_HTTP_REQUESTS=65535')
  } finally {
    proc.kill()
    await proc.exited
  }
})

test("an HTTP proxy in the environment (for remote providers) does not carry calls to a provider on loopback (a local model), nor to hosts the operator's NO_PROXY names", async () => {
  const dir = tempDir()
  const dead = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const proxy = `http://127.0.0.1:${dead.port}`
  dead.stop(true)
  const answer = () => Response.json({ id: 'c', object: 'chat.completion', created: 1, model: 'llama', choices: [{ index: 0, message: { role: 'assistant', content: 'direct' }, finish_reason: 'stop' }] })
  const fast = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: answer })
  // Stands in for a host the operator's own NO_PROXY names (it must stay direct too).
  const named = Bun.serve({ port: 0, hostname: '127.0.0.2', fetch: answer })
  const configPath = join(dir, 'witness.yaml')
  writeFileSync(
    configPath,
    JSON.stringify({
      database: join(dir, 'witness.db'),
      providers: { ollama: { type: 'openai', base_url: `http://localhost:${fast.port}/v1` }, inhouse: { type: 'openai', base_url: `http://127.0.0.2:${named.port}/v1` } },
      chains: { default: [{ provider: 'ollama', model: 'llama', retries: 0 }], inhouse: [{ provider: 'inhouse', model: 'llama', retries: 0 }] },
    }),
  )
  const { proc, url } = await spawnWitness(configPath, { HTTP_PROXY: proxy, NO_PROXY: '127.0.0.2' })
  try {
    for (const chain of ['default', 'inhouse']) {
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ chain, agent: 'local', messages: [{ role: 'user', content: 'hi' }] }) })
      expect(res.status).toBe(200)
    }
    expect(readRows(join(dir, 'witness.db')).map((r) => r.status)).toEqual(['success', 'success'])
  } finally {
    proc.kill()
    await proc.exited
    fast.stop(true)
    named.stop(true)
  }
})
