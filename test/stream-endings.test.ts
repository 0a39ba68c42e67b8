/**
 * A stream's ending, as the rest of witness hears it. A stream that fails
 * after its first event (an error event, a cut) failed its request: the
 * cooldown breaker counts it and the deadman switch sees no success, where
 * both used to count it a success at its first byte. And an upstream that
 * sends an error event and keeps generating is closed, not left open.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { type TestWitness, manualClock, simConfig } from './support/witness.ts'

const suite = useSimulator()

// An Anthropic upstream that sends a text delta, then an `overloaded_error` event, then holds its connection open.
let closedByWitness = 0
const encoder = new TextEncoder()
const EVENTS: [string, unknown][] = [
  ['message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, usage: { input_tokens: 5, output_tokens: 0 } } }],
  ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
  ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } }],
  ['error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }],
]
const overloaded = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch(req) {
    req.signal.addEventListener('abort', () => closedByWitness++)
    const body = new ReadableStream<Uint8Array>({
      start(stream) {
        for (const [event, data] of EVENTS) stream.enqueue(encoder.encode(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`))
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  },
})
afterAll(() => overloaded.stop(true))

const providers = { flaky: { type: 'anthropic', base_url: `http://127.0.0.1:${overloaded.port}/v1` } }

async function stream(w: TestWitness): Promise<string> {
  const res = await w.post('/v1/chat/completions', { model: 'default', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(res.status).toBe(200)
  return res.text()
}

async function heartbeat(w: TestWitness) {
  const res = await fetch(`${w.url}/heartbeat`)
  return { status: res.status, body: await res.json() }
}

describe("a stream's ending, as the breaker and the deadman switch hear it", () => {
  test('one failing after its first event gets its error event to the client, and witness closes the upstream connection', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'flaky', model: 'm', retries: 0 }] }, { providers }))
    const before = closedByWitness
    const text = await stream(w)
    expect(text).toContain('upstream error event: Overloaded')
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ provider: 'flaky', status: 'error' })
    const deadline = Date.now() + 5000
    while (closedByWitness === before && Date.now() < deadline) await Bun.sleep(20)
    expect(closedByWitness).toBe(before + 1)
  })

  test("a client of the provider's own API gets its error event as the provider sent it (an overload stays an overloaded_error)", async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'flaky', model: 'm', retries: 0 }] }, { providers }))
    const res = await w.post('/v1/messages', { model: 'default', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const frames = (await res.text()).split('\n\n').filter(Boolean)
    expect(frames.at(-1)).toBe(`event: error\ndata: ${JSON.stringify(EVENTS[3]![1])}`)
    expect(readRows(w.dbPath).at(-1)!.error_message).toBe('stream interrupted after 1 chunks (upstream error event: Overloaded)')
  })

  test("a provider's error event quoting the prompt reaches the client as valid JSON, the prompt cut out", async () => {
    const quoting = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        const said = ((await req.json()) as { messages: { content: string }[] }).messages[0]!.content
        const events = [...EVENTS.slice(0, 3), ['error', { type: 'error', error: { type: 'invalid_request_error', message: `output blocked for input: ${said}` } }] as const]
        return new Response(events.map(([event, data]) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`).join(''), { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    try {
      const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'quoting', model: 'm', retries: 0 }] }, { providers: { quoting: { type: 'anthropic', base_url: `http://127.0.0.1:${quoting.port}/v1` } } }))
      const prompt = '\\frac{a}{b} simplify this expression for me please'
      const res = await w.post('/v1/messages', { model: 'default', max_tokens: 50, stream: true, messages: [{ role: 'user', content: prompt }] }, { 'x-agent-name': 'ezra' })
      const last = (await res.text()).split('\n\n').filter(Boolean).at(-1)!
      expect(last).toStartWith('event: error\ndata: ')
      const error = JSON.parse(last.slice('event: error\ndata: '.length))
      expect(error.error.type).toBe('invalid_request_error')
      expect(error.error.message).toStartWith('output blocked for input: ')
      expect(error.error.message).not.toContain('simplify this expression')
    } finally {
      quoting.stop(true)
    }
  })

  test('one failing after its first event counts toward the cooldown: after three, the provider is skipped', async () => {
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'flaky', model: 'm', retries: 0 }, { provider: 'sim', model: 'ok' }] }, { providers, policy: { cooldown_failures: 3, cooldown_s: 600 } }),
    )
    for (let i = 0; i < 3; i++) expect(await stream(w)).toContain('Overloaded')
    const fourth = await stream(w)
    expect(fourth).not.toContain('Overloaded')
    expect(fourth).toContain('[DONE]')
    const rows = readRows(w.dbPath)
    expect(rows.filter((r) => r.provider === 'flaky').map((r) => r.status)).toEqual(['error', 'error', 'error'])
    expect(rows.at(-2)!.error_message).toStartWith('fallback from flaky/m: skipped, cooling down after 3 consecutive failures')
  })

  test('one failing after its first event is no success for the deadman switch: no last success, the chain counts as failing, and the config is not promoted', async () => {
    const clock = manualClock()
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'flaky', model: 'm', retries: 0 }] }, { providers, deadman: { failing_window_s: 60, promote_after_s: 30 } }),
      { clock },
    )
    await w.deadman.checkNow()
    await stream(w)
    while ((await heartbeat(w)).body.in_flight > 0) await Bun.sleep(5)
    expect((await heartbeat(w)).body.last_success_at).toBeNull()
    for (const ms of [40_000, 21_000]) {
      clock.advance(ms)
      await stream(w) // failing still, over the whole window
      while ((await heartbeat(w)).body.in_flight > 0) await Bun.sleep(5)
    }
    await w.deadman.checkNow()
    expect(existsSync(`${w.configPath}.last-good`)).toBe(false)
    const report = await heartbeat(w)
    expect(report.status).toBe(503)
    expect(report.body.reasons).toEqual(['every chain called has failed for 61 s without a success (default; window 60 s)'])
  })

  test('a probe after the cooldown holds its slot while it streams: a second request is not let through as another probe', async () => {
    // Three 503s open the breaker; the fourth call (the probe) streams slowly.
    let calls = 0
    const slow = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch() {
        calls++
        if (calls <= 3) return new Response('{"error":{"message":"busy"}}', { status: 503, headers: { 'content-type': 'application/json' } })
        const body = new ReadableStream<Uint8Array>({
          async start(stream) {
            for (let i = 0; i < 10; i++) {
              stream.enqueue(encoder.encode(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: `w${i} ` }, finish_reason: null }] })}\n\n`))
              await Bun.sleep(50)
            }
            stream.enqueue(encoder.encode('data: [DONE]\n\n'))
            stream.close()
          },
        })
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    try {
      const clock = manualClock()
      const w = await suite.start(
        simConfig(
          suite.sim.url,
          { default: [{ provider: 'slow', model: 'm', retries: 0 }, { provider: 'sim', model: 'ok' }] },
          { providers: { slow: { type: 'openai', base_url: `http://127.0.0.1:${slow.port}/v1` } }, policy: { cooldown_failures: 3, cooldown_s: 60 } },
        ),
        { clock },
      )
      for (let i = 0; i < 3; i++) await stream(w)
      clock.advance(61_000)
      const probe = stream(w)
      while (calls < 4) await Bun.sleep(5)
      const meanwhile = await stream(w)
      expect(meanwhile).toContain('[DONE]')
      expect(await probe).toContain('w9')
      expect(calls).toBe(4)
      expect(readRows(w.dbPath).some((r) => r.error_message?.includes('a probe request is in flight'))).toBe(true)
    } finally {
      slow.stop(true)
    }
  })

  describe('keep-alive comments (OpenRouter sends `: OPENROUTER PROCESSING` while a model works)', () => {
    // An OpenAI-compatible upstream that sends comments every 40 ms for 600 ms, before its first event or after it.
    const chunk = (content: string) => `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`
    const keepingAlive = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        const before = ((await req.json()) as { model: string }).model === 'early'
        const body = new ReadableStream<Uint8Array>({
          async start(stream) {
            if (!before) stream.enqueue(encoder.encode(chunk('Thinking')))
            for (let waited = 0; waited < 600; waited += 40) {
              stream.enqueue(encoder.encode(': OPENROUTER PROCESSING\n\n'))
              await Bun.sleep(40)
            }
            stream.enqueue(encoder.encode(`${chunk(' done.')}data: [DONE]\n\n`))
            stream.close()
          },
        })
        return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    afterAll(() => keepingAlive.stop(true))
    const base = `http://127.0.0.1:${keepingAlive.port}/v1`

    test('count as signs of life for the idle limit: a stream kept alive longer than idle_timeout_ms is not cut', async () => {
      const w = await suite.start(
        simConfig(suite.sim.url, { default: [{ provider: 'alive', model: 'm', retries: 0, idle_timeout_ms: 200 }] }, { providers: { alive: { type: 'openai', base_url: base } } }),
      )
      const text = await stream(w)
      expect(text).toContain('done.')
      expect(text).toContain('[DONE]')
      expect(readRows(w.dbPath).at(-1)).toMatchObject({ provider: 'alive', status: 'success' })
    })

    test('do not count as the first event: a provider sending only comments past first_byte_timeout_ms is left for the next step', async () => {
      const w = await suite.start(
        simConfig(
          suite.sim.url,
          { default: [{ provider: 'waiting', model: 'early', retries: 0, first_byte_timeout_ms: 200 }, { provider: 'sim', model: 'ok' }] },
          { providers: { waiting: { type: 'openai', base_url: base } } },
        ),
      )
      const res = await fetch(`${w.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
        body: JSON.stringify({ model: 'default', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      })
      expect(res.status).toBe(200)
      await res.text()
      const rows = readRows(w.dbPath)
      expect(rows.map((r) => `${r.provider}:${r.status}`)).toEqual(['waiting:timeout', 'sim:fallback', 'sim:success'])
    })
  })
})
