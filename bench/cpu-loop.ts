/**
 * CPU per request, measured in one process: drives a server's handler
 * (`server.fetch`) with 16 requests in flight against the simulator
 * (another process) and reads this process's CPU time. Unlike requests/s
 * under wrk, this barely moves when the machine is busy, so it shows where
 * the cost is. `bun bench/cpu-loop.ts bare|witness CONFIG? N UPSTREAM_URL`
 * prints one JSON line.
 */
import { Hono } from 'hono'
import { serve } from '../src/main.ts'

const [kind, configPath, nText, upstream = 'http://127.0.0.1:9100'] = process.argv.slice(2)
const N = Number(nText ?? 10_000)
const body = JSON.stringify({ model: 'default', messages: [{ role: 'user', content: 'Say hello in one short sentence.' }] })

let handle: (req: Request) => Promise<Response>
let base: string
let stop = async () => {}
if (kind === 'bare') {
  const app = new Hono()
  app.post('/v1/chat/completions', async (c) => {
    const json = await c.req.json()
    const res = await fetch(`${upstream}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(json) })
    return c.json(await res.json())
  })
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: app.fetch })
  handle = async (req) => (await server.fetch(req)) as Response
  base = `http://127.0.0.1:${server.port}`
  stop = async () => void server.stop(true)
} else {
  if (!configPath) throw new Error('usage: cpu-loop.ts witness CONFIG N')
  const running = await serve({ configPath, port: 0, log: () => {}, background: false, jobs: false, statsFill: false })
  handle = async (req) => (await running.server.fetch(req)) as Response
  base = running.url
  stop = () => running.stop(0)
}

const request = () => new Request(`${base}/v1/chat/completions`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'content-length': String(body.length), 'x-agent-name': 'bench' } })
for (let i = 0; i < 300; i++) await (await handle(request())).text() // warm up
let started = 0
const cpu0 = process.cpuUsage()
const t0 = performance.now()
await Promise.all(
  Array.from({ length: 16 }, async () => {
    while (started < N) {
      started++
      const res = await handle(request())
      if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`)
      await res.text()
    }
  }),
)
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ kind, cpu_us_per_request: (cpu.user + cpu.system) / N, wall_us_per_request: ((performance.now() - t0) * 1000) / N }))
await stop()
process.exit(0)
