/**
 * The provider simulator: a loopback HTTP server that speaks the OpenAI
 * chat-completions (`POST /v1/chat/completions`) and Anthropic Messages
 * (`POST /v1/messages`) wire formats, JSON and SSE, with scripted
 * behaviour (latency, hangs, HTTP errors with Retry-After, malformed
 * bodies, streams cut mid-way). It records every request it receives, so
 * tests and drills can compare what upstream saw with the rows.
 */
import { listen } from '../listen.ts'
import { pickChaos } from './chaos.ts'
import { parseDirectives } from './directives.ts'
import { between, freshSeed, seededRandom } from './random.ts'
import { type SimWire, errorResponse, jsonResponse, planReply, streamFrames } from './wire.ts'

export interface ReceivedRequest {
  seq: number
  wire: SimWire
  path: string
  model: string
  headers: Record<string, string>
  body: Record<string, unknown>
  /** Set when the client closed the connection before the response ended. */
  aborted: boolean
  receivedAt: number
  /** What chaos mode (`chaos-P`) made of it: a fault such as `hang` or `cut`, `none`, or null without chaos. */
  fault: string | null
}

export interface SimulatorOptions {
  port?: number
  hostname?: string
  /** Called as each request arrives, before it is answered (tests check the database here). */
  onRequest?: (request: ReceivedRequest) => void | Promise<void>
  /** Keep at most this many received requests in memory (0: keep none, for load tests). */
  keep?: number
  /** Seed for random latency (`latency-A-B`) and chaos (`chaos-P`); default: a fresh one. */
  seed?: number
}

export interface Simulator {
  url: string
  port: number
  /** The seed of its random choices (replay a run by passing it again). */
  seed: number
  requests: ReceivedRequest[]
  /** Requests received so far, including ones no longer kept. */
  count(): number
  reset(): void
  stop(): Promise<void>
}

export function startSimulator(options: SimulatorOptions = {}): Simulator {
  const requests: ReceivedRequest[] = []
  const scripts = new Map<string, number>()
  const keep = options.keep ?? 10_000
  const seed = options.seed ?? freshSeed()
  const random = seededRandom(seed)
  let seq = 0

  const server = listen(options.hostname ?? '127.0.0.1', options.port ?? 0, {
    idleTimeout: 0,
    // A simulated cut errors the response stream on purpose: not worth a stack trace in the log.
    development: false,
    async fetch(req) {
      const path = new URL(req.url).pathname
      if (req.method === 'GET' && path === '/_sim/requests') return Response.json(requests)
      if (req.method === 'GET' && path === '/_sim/health') return Response.json({ status: 'ok', received: seq })
      if (req.method === 'DELETE' && path === '/_sim/requests') {
        requests.length = 0
        scripts.clear()
        seq = 0
        return new Response(null, { status: 204 })
      }
      const wire: SimWire | null = path.endsWith('/chat/completions') ? 'openai' : path.endsWith('/messages') ? 'anthropic' : null
      if (req.method !== 'POST' || !wire) return Response.json({ error: { message: `no route ${req.method} ${path}` } }, { status: 404 })

      // Counted on arrival, before the body is read: a request cut off mid-way was still received.
      const received: ReceivedRequest = {
        seq: ++seq,
        wire,
        path,
        model: '',
        headers: keep > 0 ? Object.fromEntries(req.headers) : {},
        body: {},
        aborted: false,
        receivedAt: Date.now(),
        fault: null,
      }
      if (keep > 0) {
        requests.push(received)
        if (requests.length > keep) requests.splice(0, requests.length - keep)
        req.signal.addEventListener('abort', () => (received.aborted = true), { once: true })
      }
      let body: Record<string, unknown> = {}
      try {
        body = (await req.json()) as Record<string, unknown>
      } catch {
        return Response.json(errorResponse(wire, 400, 'body is not JSON'), { status: 400 })
      }
      const model = typeof body.model === 'string' ? body.model : ''
      if (keep > 0) Object.assign(received, { model, body })
      await options.onRequest?.(received)

      const parsed = parseDirectives(model, req.headers.get('x-sim'))
      if (parsed.unknown.length) {
        const message = `unknown sim directive(s): ${parsed.unknown.join(', ')} (the README's "The simulator" lists them)`
        return Response.json(errorResponse(wire, 400, message), { status: 400 })
      }
      const chaos = pickChaos(parsed, body.stream === true, random)
      const d = chaos.directives
      if (parsed.chaosPercent !== null) received.fault = chaos.fault
      let status = d.status
      if (d.script) {
        const key = `${path}|${model}|${req.headers.get('x-sim-key') ?? ''}|${req.headers.get('x-sim') ?? ''}`
        const n = scripts.get(key) ?? 0
        scripts.set(key, n + 1)
        status = d.script[Math.min(n, d.script.length - 1)] ?? 200
      }
      if (d.hang) return hang(req.signal)
      const latencyMs = d.latencyMaxMs === null ? d.latencyMs : between(random, d.latencyMs, Math.max(d.latencyMs, d.latencyMaxMs))
      if (latencyMs > 0) await sleep(latencyMs)
      const headers: Record<string, string> = { 'content-type': 'application/json' }
      if (d.retryAfterS !== null) headers['retry-after'] = String(d.retryAfterS)

      if (status !== null && status !== 200) {
        let message = `simulated HTTP ${status}`
        if (d.echoKey) message += ` (received credentials: ${req.headers.get('authorization') ?? req.headers.get('x-api-key') ?? 'none'})`
        return Response.json(errorResponse(wire, status, message), { status, headers })
      }
      if (d.malformed) return new Response('{"id": "chatcmpl-broken", "choices": [', { headers })
      if (d.empty) return new Response('{}', { headers })

      const reply = planReply(wire, body, d, received.seq)
      const createdS = Math.floor(Date.now() / 1000)
      if (body.stream === true) {
        const opts = body.stream_options as { include_usage?: boolean } | undefined
        return streamResponse(wire, reply, d, createdS, opts?.include_usage === true, req.signal)
      }
      return Response.json(jsonResponse(wire, reply, d, createdS), { headers })
    },
  })

  return {
    url: `http://${server.hostname}:${server.port}`,
    port: server.port!,
    seed,
    requests,
    count: () => seq,
    reset() {
      requests.length = 0
      scripts.clear()
      seq = 0
    },
    async stop() {
      await server.stop(true)
    },
  }
}

function streamResponse(
  wire: SimWire,
  reply: ReturnType<typeof planReply>,
  d: ReturnType<typeof parseDirectives>,
  createdS: number,
  includeUsage: boolean,
  signal: AbortSignal,
): Response {
  const { frames, contentStart } = streamFrames(wire, reply, d, createdS, includeUsage)
  const encoder = new TextEncoder()
  const stream = new ReadableStream<Uint8Array>({
    async start(controller) {
      for (let i = 0; i < frames.length; i++) {
        if (signal.aborted) return
        const contentIndex = i - contentStart
        if (d.cutAfter !== null && contentIndex === d.cutAfter) {
          await sleep(20) // let what was sent reach the client first
          controller.error(new Error('simulated cut'))
          return
        }
        if (d.stallAfter !== null && contentIndex === d.stallAfter) {
          await hangUntil(signal)
          return
        }
        controller.enqueue(encoder.encode(frames[i]!))
        if (d.chunkDelayMs > 0 && contentIndex >= 0) await sleep(d.chunkDelayMs)
      }
      controller.close()
    },
  })
  return new Response(stream, { headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' } })
}

function hang(signal: AbortSignal): Promise<Response> {
  return hangUntil(signal).then(() => new Response(null, { status: 499 }))
}

function hangUntil(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve()
    signal.addEventListener('abort', () => resolve(), { once: true })
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
