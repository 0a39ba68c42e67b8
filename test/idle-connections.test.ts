/**
 * Client connections and their idle limit: between requests (and before the
 * first) a connection that sits idle is closed, so sockets left by clients
 * that vanished do not pile up until the open-file limit; while a request is
 * answered it has no idle limit, however long its provider takes or a
 * stream pauses. Real sockets, kept alive as an SDK's pool keeps them.
 */
import { afterAll, expect, test } from 'bun:test'
import { once } from 'node:events'
import { existsSync, readFileSync } from 'node:fs'
import { connect as connectNet } from 'node:net'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readRows } from './support/rows.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

const sim: Simulator = startSimulator()
const running: TestWitness[] = []
afterAll(async () => {
  for (const w of running) await w.stop(0)
  await sim.stop()
})

const IDLE_S = 1
/** Long enough for Bun's coarse idle timer to fire several times over. */
const WAIT_MS = 15_000

interface Connection {
  /** Sends one request on the kept-alive connection. */
  send(request: string): void
  /** Everything received so far. */
  received(): string
  /** Resolves with the time the server closed the connection, or null if it was still open after `ms`. */
  closedWithin(ms: number): Promise<number | null>
}

async function connect(url: string): Promise<Connection> {
  const { hostname, port } = new URL(url)
  let text = ''
  let closedAt: number | null = null
  let onClose = () => {}
  const socket = await Bun.connect({
    hostname,
    port: Number(port),
    socket: {
      data: (_, chunk) => void (text += chunk.toString()),
      close: () => {
        closedAt = performance.now()
        onClose()
      },
    },
  })
  return {
    send: (request) => void socket.write(request),
    received: () => text,
    closedWithin: (ms) =>
      new Promise((resolve) => {
        if (closedAt !== null) return resolve(closedAt)
        const timer = setTimeout(() => {
          // Resolved first: closing it from this side calls onClose too.
          resolve(null)
          socket.end()
        }, ms)
        onClose = () => {
          clearTimeout(timer)
          resolve(closedAt)
        }
      }),
  }
}

const post = (body: Record<string, unknown>) => {
  const json = JSON.stringify({ agent: 'pool', messages: [{ role: 'user', content: 'hi' }], ...body })
  return `POST /v1/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\n\r\n${json}`
}

test('a request handed to the server in process (server.fetch, as the CPU benchmark does) is answered', async () => {
  const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
  running.push(w)
  const res = await w.server.fetch(new Request(`${w.url}/v1/models`))
  expect(res.status).toBe(200)
})

test('idle connections are closed between requests; a call or a stream outlasting the idle limit is answered in full first', async () => {
  const w = await startWitness(
    simConfig(sim.url, {
      slow: [{ provider: 'sim', model: 'm+latency-3000', retries: 0 }],
      pausing: [{ provider: 'sim', model: 'm+chunks-1+chunk-delay-1200', retries: 0 }],
    }),
    { idleConnectionS: IDLE_S },
  )
  running.push(w)
  const [silent, afterAnswer, slow, pausing] = await Promise.all([connect(w.url), connect(w.url), connect(w.url), connect(w.url)])
  afterAnswer.send(`GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`)
  slow.send(post({ chain: 'slow' }))
  pausing.send(post({ chain: 'pausing', stream: true }))
  const [silentClosed, afterAnswerClosed, slowClosed, pausingClosed] = await Promise.all([silent, afterAnswer, slow, pausing].map((c) => c.closedWithin(WAIT_MS)))
  // A connection that never sent a request, and one idle after its answer: closed.
  expect(silentClosed).not.toBeNull()
  expect(afterAnswer.received()).toStartWith('HTTP/1.1 200')
  expect(afterAnswerClosed).not.toBeNull()
  // A call that took longer than the idle limit got its answer, then its connection was closed too.
  expect(slow.received()).toStartWith('HTTP/1.1 200')
  expect(slow.received()).toContain('"status":"success"')
  expect(slowClosed).not.toBeNull()
  // So did a stream that paused for longer than the limit.
  expect(pausing.received()).toStartWith('HTTP/1.1 200')
  expect(pausing.received()).toContain('data: [DONE]')
  expect(pausingClosed).not.toBeNull()
}, 30_000)

/** Whether the server's end of the connection from `clientPort` to `serverPort` is still established (Linux: /proc/net/tcp). */
function serverSideOpen(serverPort: number, clientPort: number): boolean {
  const hex = (port: number) => port.toString(16).toUpperCase().padStart(4, '0')
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .some((fields) => fields[1]?.endsWith(`:${hex(serverPort)}`) && fields[2]?.endsWith(`:${hex(clientPort)}`) && fields[3] === '01')
}

// Linux's view of the server's sockets; elsewhere the test says it skips.
const HAVE_PROC_NET = existsSync('/proc/net/tcp')
if (!HAVE_PROC_NET) console.log('idle-connections: skipping the stopped-reader test: no /proc/net/tcp to see the server side of a connection (not Linux)')

test.skipIf(!HAVE_PROC_NET)('a stream client that stops reading: once witness has ended the stream (its row finished), the idle limit holds again and the connection is closed', async () => {
  // An upstream that streams 64 KB chunks for as long as it is read: far more than the kernel's buffers hold.
  const big = JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: 'x'.repeat(65_536) }, finish_reason: null }] })
  const upstream = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    fetch: () => new Response(new ReadableStream({ pull: (c) => c.enqueue(new TextEncoder().encode(`data: ${big}\n\n`)) }), { headers: { 'content-type': 'text/event-stream' } }),
  })
  const w = await startWitness(
    { providers: { big: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } }, chains: { endless: [{ provider: 'big', model: 'm', retries: 0, timeout_ms: 1500 }] } },
    { idleConnectionS: IDLE_S },
  )
  running.push(w)
  const port = Number(new URL(w.url).port)
  const socket = connectNet(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(post({ chain: 'endless', stream: true }))
  await once(socket, 'data')
  socket.pause() // reads no more: the answer backs up into the kernel's buffers
  const clientPort = socket.localPort!
  expect(serverSideOpen(port, clientPort)).toBe(true)
  // The stream's time runs out: witness ends it and finishes its row, while the client still holds it unread.
  for (let i = 0; i < 100 && !readRows(w.dbPath).some((row) => row.status === 'timeout'); i++) await Bun.sleep(100)
  expect(readRows(w.dbPath).map((row) => row.status)).toEqual(['timeout'])
  const deadline = performance.now() + WAIT_MS
  while (serverSideOpen(port, clientPort) && performance.now() < deadline) await Bun.sleep(200)
  expect(serverSideOpen(port, clientPort)).toBe(false)
  socket.destroy()
  upstream.stop(true)
}, 40_000)
