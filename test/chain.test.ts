/**
 * The provider chain against a real simulator and a real SQLite file:
 * success, retries, timeouts, fallbacks, cooldown, exhaustion, skips.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { retryWaitMs } from '../src/router/attempt.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readMeta, readRows, rowById } from './support/rows.ts'
import { manualClock, simConfig, startWitness, type TestWitness } from './support/witness.ts'
import { eventually } from './support/process.ts'

let sim: Simulator
const running: TestWitness[] = []

beforeAll(() => {
  sim = startSimulator()
})
afterAll(async () => {
  for (const w of running) await w.stop(0)
  await sim.stop()
})
beforeEach(() => sim.reset())

async function witness(chains: Record<string, unknown[]>, extra: Record<string, unknown> = {}, options: Parameters<typeof startWitness>[1] = {}) {
  const w = await startWitness(simConfig(sim.url, chains, extra), options)
  running.push(w)
  return w
}

describe('a successful call', () => {
  test('answers with the message and writes one success row with usage, latency and the upstream URL', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'sim-small+tokens-12-34' }] })
    const res = await w.infer({ agent: 'bezalel', temperature: 0.2 })
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.provider).toBe('sim')
    expect(body.model).toBe('sim-small+tokens-12-34')
    expect(body.served_model).toBe('sim-small')
    expect(body.message).toEqual({ role: 'assistant', content: 'sim reply to: hello there' })
    expect(body.finish_reason).toBe('stop')
    expect(body.usage).toEqual({ tokens_in: 12, tokens_out: 34 })
    expect(body.attempts).toHaveLength(1)

    const [row] = readRows(w.dbPath)
    expect(row).toMatchObject({
      agent_name: 'bezalel',
      provider: 'sim',
      model: 'sim-small+tokens-12-34',
      endpoint: `${sim.url}/v1/chat/completions`,
      tokens_in: 12,
      tokens_out: 34,
      status: 'success',
      error_message: null,
    })
    expect(row!.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    expect(row!.latency_ms).toBeGreaterThanOrEqual(0)
    expect(res.headers.get('x-witness-log-ids')).toBe(String(row!.id))
    expect(res.headers.get('x-witness-provider')).toBe('sim')
    expect(res.headers.get('x-witness-model')).toBe('sim-small+tokens-12-34')
    const [meta] = readMeta(w.dbPath)
    expect(meta).toMatchObject({ log_id: row!.id, request_id: body.request_id, chain: 'default', seq: 1, step: 0, try: 1, response_id: body.response_id, served_model: 'sim-small' })
    expect(res.headers.get('x-witness-request-id')).toBe(body.request_id)
  })

  test('a model id a header cannot carry as it is (another script, a line end) is percent-encoded in X-Witness-Model; the answer is not lost', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: '模型' }, { provider: 'sim', model: 'a\nb' }], pct: [{ provider: 'sim', model: '50%off' }] }))
    try {
      const res = await w.infer({ agent: 'bezalel', messages: [{ role: 'user', content: 'hi' }] })
      expect(res.status).toBe(200)
      expect(res.headers.get('x-witness-model')).toBe(encodeURIComponent('模型'))
      expect(decodeURIComponent(res.headers.get('x-witness-model')!)).toBe(readRows(w.dbPath)[0]!.model)
      // A % is encoded too, so that decoding always gives the model id back.
      const pct = await w.infer({ agent: 'bezalel', chain: 'pct', messages: [{ role: 'user', content: 'hi' }] })
      expect(decodeURIComponent(pct.headers.get('x-witness-model')!)).toBe('50%off')
    } finally {
      await w.stop(0)
    }
  })

  test('the pending row is committed before the upstream receives the request', async () => {
    const seen: { status: string | undefined; header: string | undefined }[] = []
    const upstream = startSimulator({
      onRequest: (req) => {
        const id = Number(req.headers['x-witness-log-id'])
        seen.push({ status: rowById(w.dbPath, id)?.status, header: req.headers['x-witness-log-id'] })
      },
    })
    const w = await startWitness(simConfig(upstream.url, { default: [{ provider: 'sim', model: 'm' }] }))
    running.push(w)
    const res = await w.infer({})
    expect(res.status).toBe(200)
    expect(seen).toEqual([{ status: 'pending', header: res.headers.get('x-witness-log-ids')! }])
    expect(readRows(w.dbPath)[0]!.status).toBe('success')
    await upstream.stop()
  })

  test('the body goes upstream untouched except model, chain and agent', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'upstream-model' }] })
    const extra = {
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      tool_choice: 'auto',
      response_format: { type: 'json_object' },
      temperature: 0.3,
      seed: 7,
      stop: ['\n'],
      n: 1,
      logprobs: false,
      user: 'u-1',
      model: 'ignored',
      vendor_extension: { anything: [1, 2] },
    }
    const res = await w.infer({ chain: 'default', ...extra })
    expect(res.status).toBe(200)
    const received = sim.requests[0]!.body
    expect(received).toEqual({ ...extra, model: 'upstream-model', messages: [{ role: 'user', content: 'hello there' }] })
  })

  test('with "stream": true, /v1/infer streams OpenAI chunks and ends with [DONE] once the row is final', async () => {
    const w = await witness({ default: [{ provider: 'simant', model: 'claude+chunks-3+tokens-4-5' }] })
    const res = await w.infer({ stream: true })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/event-stream')
    const text = await res.text()
    const frames = text.split('\n\n').filter(Boolean)
    expect(frames.at(-2)).toStartWith(': witness-receipt ')
    const data = frames.filter((f) => !f.startsWith(':')).map((f) => f.replace(/^data: /, ''))
    expect(data.at(-1)).toBe('[DONE]')
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d))
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true)
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('sim reply to: hello there')
    const [row] = readRows(w.dbPath)
    expect(row).toMatchObject({ id: Number(res.headers.get('x-witness-log-ids')), status: 'success', tokens_in: 4, tokens_out: 5 })
  })

  test('X-Agent-Name names the agent when the body does not', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm' }] })
    const res = await w.post('/v1/infer', { messages: [{ role: 'user', content: 'x' }] }, { 'x-agent-name': 'ezra' })
    expect(res.status).toBe(200)
    expect(readRows(w.dbPath)[0]!.agent_name).toBe('ezra')
  })
})

describe('retries', () => {
  test('a 503 is retried on the same step; each try is its own row', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+script-503-200', retries: 2 }] })
    const res = await w.infer({})
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => r.status)).toEqual(['error', 'success'])
    expect(rows[0]!.error_message).toBe('HTTP 503 service unavailable: simulated HTTP 503')
    expect(readMeta(w.dbPath).map((m) => m.try)).toEqual([1, 2])
    expect(sim.requests).toHaveLength(2)
  })

  test('a 429 with a short Retry-After is honoured and retried', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+script-429-200+retry-after-0.2', retries: 1 }] })
    const started = performance.now()
    const res = await w.infer({})
    expect(res.status).toBe(200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(190)
    const rows = readRows(w.dbPath)
    expect(rows[0]!.error_message).toBe('HTTP 429 rate limited (retry-after 200 ms): simulated HTTP 429')
    expect(rows.map((r) => r.status)).toEqual(['error', 'success'])
  })

  test('a Retry-After above the cap falls back instead of waiting', async () => {
    const w = await witness(
      { default: [{ provider: 'sim', model: 'm+status-429+retry-after-30', retries: 3 }, { provider: 'sim2', model: 'ok' }] },
      { policy: { retry_after_cap_ms: 1000 } },
    )
    const res = await w.infer({})
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => [r.provider, r.status])).toEqual([['sim', 'error'], ['sim2', 'fallback'], ['sim2', 'success']])
    expect(rows[1]!.error_message).toBe(
      'fallback from sim/m+status-429+retry-after-30: HTTP 429 rate limited (retry-after 30 s): simulated HTTP 429 (longer than retry_after_cap 1 s)',
    )
  })

  test("a chain every step of which asked to be left alone answers with the soonest Retry-After, so the client's SDK waits it out", async () => {
    const w = await witness(
      {
        soon: [{ provider: 'sim', model: 'm+status-429+retry-after-30', retries: 0 }, { provider: 'sim2', model: 'm+status-503+retry-after-5', retries: 0 }],
        late: [{ provider: 'sim', model: 'm+status-429+retry-after-120', retries: 0 }],
        mixed: [{ provider: 'sim', model: 'm+status-429+retry-after-5', retries: 0 }, { provider: 'sim2', model: 'm+status-500', retries: 0 }],
      },
      { policy: { retry_after_cap_ms: 1000 } },
    )
    const soon = await w.infer({ chain: 'soon' })
    expect(soon.status).toBe(502)
    expect(soon.headers.get('retry-after')).toBe('5')
    expect(soon.headers.get('x-should-retry')).toBeNull()
    // Longer than the SDKs wait out (they would resend within a second): told not to resend at all.
    const late = await w.infer({ chain: 'late' })
    expect(late.headers.get('retry-after')).toBe('120')
    expect(late.headers.get('x-should-retry')).toBe('false')
    // A step that failed without asking may take the request again at once: no wait is claimed.
    const mixed = await w.infer({ chain: 'mixed' })
    expect(mixed.status).toBe(502)
    expect(mixed.headers.get('retry-after')).toBeNull()
  })

  test('a step skipped while it cools down may take the request again first: no wait is claimed, and the client may resend', async () => {
    const w = await witness(
      {
        trip: [{ provider: 'sim', model: 'm+status-500', retries: 0 }],
        both: [{ provider: 'sim', model: 'm+status-500', retries: 0 }, { provider: 'sim2', model: 'm+status-429+retry-after-120', retries: 0 }],
      },
      { policy: { cooldown_failures: 1, cooldown_s: 2, retry_after_cap_ms: 1000 } },
    )
    await w.infer({ chain: 'trip' }) // the first step now cools down for 2 s
    const res = await w.infer({ chain: 'both' })
    expect(res.status).toBe(502)
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('skipped, cooling down')
    expect(res.headers.get('retry-after')).toBeNull()
    expect(res.headers.get('x-should-retry')).toBeNull()
  })

  test('a call that fails the same way every time (a redirect, an untrusted certificate) is not retried, and the client is told not to resend', async () => {
    const redirecting = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => Response.redirect('https://api.example.invalid/v1/chat/completions', 301) })
    const fixtures = join(import.meta.dir, 'fixtures')
    const selfSigned = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      tls: { cert: Bun.file(join(fixtures, 'self-signed-cert.pem')), key: Bun.file(join(fixtures, 'self-signed-key.pem')) },
      fetch: () => new Response('never reached'),
    })
    try {
      const w = await witness(
        { moved: [{ provider: 'moved', model: 'm', retries: 2 }], private: [{ provider: 'private', model: 'm', retries: 2 }] },
        {
          providers: {
            moved: { type: 'openai', base_url: `http://127.0.0.1:${redirecting.port}/v1` },
            private: { type: 'openai', base_url: `https://127.0.0.1:${selfSigned.port}/v1` },
          },
        },
      )
      const moved = await w.infer({ chain: 'moved' })
      expect(moved.status).toBe(502)
      expect(moved.headers.get('x-should-retry')).toBe('false')
      const priv = await w.infer({ chain: 'private' })
      expect(priv.headers.get('x-should-retry')).toBe('false')
      expect(readRows(w.dbPath).map((r) => [r.provider, r.status, r.error_message])).toEqual([
        ['moved', 'error', 'redirected: the provider answered with a redirect, which witness does not follow (check base_url)'],
        ['private', 'error', 'TLS certificate not trusted (DEPTH_ZERO_SELF_SIGNED_CERT; a private CA goes in NODE_EXTRA_CA_CERTS)'],
      ])
    } finally {
      redirecting.stop(true)
      selfSigned.stop(true)
    }
  })

  test('the row keeps the endpoint without its query string or credentials, which still go upstream', async () => {
    const base = new URL(sim.url)
    const w = await witness({ default: [{ provider: 'keyed', model: 'm' }] }, { providers: { keyed: { type: 'openai', base_url: `http://user:s3cret-pass@${base.host}/v1?api-version=2024-10-21&key=qs-secret` } } })
    expect((await w.infer({})).status).toBe(200)
    expect(readRows(w.dbPath)[0]!.endpoint).toBe(`${sim.url}/v1/chat/completions`)
    expect(sim.requests[0]!.headers.authorization).toBe(`Basic ${btoa('user:s3cret-pass')}`)
  })

  test('a provider that reports no usage leaves tokens_in and tokens_out NULL, not 0', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+no-usage' }] })
    expect((await w.infer({})).status).toBe(200)
    expect(readRows(w.dbPath)[0]).toMatchObject({ status: 'success', tokens_in: null, tokens_out: null })
  })

  test('a refused connection and a 408 are retried; a 403 is not', async () => {
    const closed = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') })
    const deadUrl = `http://127.0.0.1:${closed.port}/v1`
    closed.stop(true)
    const w = await witness(
      {
        refused: [{ provider: 'dead', model: 'm', retries: 1 }, { provider: 'sim2', model: 'ok' }],
        slow: [{ provider: 'sim', model: 'm+status-408', retries: 1 }, { provider: 'sim2', model: 'ok' }],
        denied: [{ provider: 'sim', model: 'm+status-403', retries: 3 }, { provider: 'sim2', model: 'ok' }],
      },
      { providers: { dead: { type: 'openai', base_url: deadUrl } } },
    )
    for (const chain of ['refused', 'slow', 'denied']) expect((await w.infer({ chain })).status).toBe(200)
    const rows = readRows(w.dbPath).filter((r) => r.status !== 'fallback')
    expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
      ['dead', 'error', 'connection refused'],
      ['dead', 'error', 'connection refused'],
      ['sim2', 'success', null],
      ['sim', 'error', 'HTTP 408 request timeout: simulated HTTP 408'],
      ['sim', 'error', 'HTTP 408 request timeout: simulated HTTP 408'],
      ['sim2', 'success', null],
      ['sim', 'error', 'HTTP 403 forbidden: simulated HTTP 403'],
      ['sim2', 'success', null],
    ])
  })

  test('a 400 is not retried: it falls back at once', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+status-400', retries: 3 }, { provider: 'sim2', model: 'ok' }] })
    const res = await w.infer({})
    expect(res.status).toBe(200)
    expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['error', 'fallback', 'success'])
    expect(sim.requests).toHaveLength(2)
  })

  test('a 500 is retried then falls back with a row naming the next provider and why', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+status-500', retries: 1 }, { provider: 'sim2', model: 'backup' }] })
    const res = await w.infer({ agent: 'ezra' })
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => [r.provider, r.model, r.status])).toEqual([
      ['sim', 'm+status-500', 'error'],
      ['sim', 'm+status-500', 'error'],
      ['sim2', 'backup', 'fallback'],
      ['sim2', 'backup', 'success'],
    ])
    expect(rows[2]!.error_message).toBe('fallback from sim/m+status-500: HTTP 500 internal server error: simulated HTTP 500')
    expect(rows[2]!.endpoint).toBe(`${sim.url}/v1/chat/completions`)
    expect(rows.every((r) => r.agent_name === 'ezra')).toBe(true)
    const body = await res.json()
    expect(body.attempts.map((a: { log_id: number; status: string }) => [a.log_id, a.status])).toEqual(rows.map((r) => [r.id, r.status]))
    expect(res.headers.get('x-witness-log-ids')).toBe(rows.map((r) => r.id).join(','))
    expect(new Set(readMeta(w.dbPath).map((m) => m.request_id)).size).toBe(1)
  })

  test('malformed JSON from upstream is an error row and a fallback', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+malformed' }, { provider: 'sim2', model: 'ok' }] })
    const res = await w.infer({})
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows[0]).toMatchObject({ status: 'error', error_message: 'malformed response: body is not JSON' })
    expect(rows.map((r) => r.status)).toEqual(['error', 'fallback', 'success'])
  })

  test('an upstream body without end is not held in memory: errors are read to 64 KB, answers to 64 MB, events to 16 MB', async () => {
    // Each answer is an endless body (the kind a broken proxy sends); the upstream notes when witness hangs up.
    const hungUp: string[] = []
    const endless = (path: string, chunk: Uint8Array) =>
      new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(chunk), cancel: () => void hungUp.push(path) })
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        const path = new URL(req.url).pathname
        if (path.startsWith('/error')) return new Response(endless(path, new TextEncoder().encode('<html>'.repeat(10_000))), { status: 500 })
        if (path.startsWith('/sse')) return new Response(endless(path, new TextEncoder().encode(`data: ${'x'.repeat(256 * 1024)}`)), { headers: { 'content-type': 'text/event-stream' } })
        return new Response(endless(path, new Uint8Array(1024 * 1024).fill(32)), { headers: { 'content-type': 'application/json' } })
      },
    })
    try {
      const base = `http://127.0.0.1:${upstream.port}`
      const w = await witness(
        { default: [{ provider: 'error', model: 'm', retries: 0 }, { provider: 'huge', model: 'm' }, { provider: 'sse', model: 'm' }] },
        { providers: { error: { type: 'openai', base_url: `${base}/error` }, huge: { type: 'openai', base_url: `${base}/huge` }, sse: { type: 'openai', base_url: `${base}/sse` } } },
      )
      expect((await w.infer({})).status).toBe(502)
      expect((await w.infer({ stream: true })).status).toBe(502)
      const rows = readRows(w.dbPath).filter((r) => r.status !== 'fallback')
      expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
        ['error', 'error', expect.stringMatching(/^HTTP 500 internal server error: <html><html>.{150,}…$/)],
        ['huge', 'error', 'malformed response: larger than 64 MB'],
        ['sse', 'error', 'malformed response: larger than 64 MB'],
        ['error', 'error', expect.stringMatching(/^HTTP 500 internal server error: <html>/)],
        ['huge', 'error', 'malformed response: expected an event stream, got application/json (larger than 64 MB)'],
        ['sse', 'error', 'malformed response: an event longer than 16 MB'],
      ])
      expect(hungUp).toContain('/error/chat/completions')
      expect(hungUp).toContain('/huge/chat/completions')
      expect(hungUp).toContain('/sse/chat/completions')
    } finally {
      await upstream.stop(true)
    }
  })
})

describe('timeouts', () => {
  test('a hung upstream times out, its socket is closed, and the chain falls back', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'slow+hang', timeout_ms: 150 }, { provider: 'sim2', model: 'ok' }] })
    const res = await w.infer({})
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => r.status)).toEqual(['timeout', 'fallback', 'success'])
    expect(rows[0]!.error_message).toBe('timeout after 150 ms')
    expect(rows[0]!.latency_ms).toBeGreaterThanOrEqual(150)
    expect(rows[1]!.error_message).toBe('fallback from sim/slow+hang: timeout after 150 ms')
    // The simulator saw its client go away: the request was aborted, not abandoned.
    await eventually(() => sim.requests[0]!.aborted === true)
    expect(sim.requests[0]!.aborted).toBe(true)
  })

  test('a timeout is not retried on the same step by default', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'slow+hang', timeout_ms: 50, retries: 3 }] })
    const res = await w.infer({})
    expect(res.status).toBe(502)
    expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['timeout'])
  })
})

describe('a client that goes away', () => {
  test('during the wait before a retry, or during the call: the rows are finished and nothing is logged as an internal error', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'm+status-503', retries: 1 }], hung: [{ provider: 'sim', model: 'm+hang' }] }, { policy: { backoff_min_ms: 400, backoff_max_ms: 400 } })
    // The client leaves once `ready` says witness is where the test wants it (not after a fixed time: a slow machine's commit took longer).
    const leave = async (chain: string, ready: () => boolean) => {
      const controller = new AbortController()
      const answered = fetch(`${w.url}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'a', chain, messages: [{ role: 'user', content: 'hi' }] }),
        signal: controller.signal,
      }).catch(() => null)
      await eventually(ready)
      controller.abort()
      await answered
    }
    await leave('default', () => readRows(w.dbPath)[0]?.status === 'error') // gone while witness waits 400 ms before the retry
    await leave('hung', () => sim.count() === 2) // gone while the upstream hangs
    await Bun.sleep(500) // past the 400 ms the retry would have come after
    await eventually(() => readRows(w.dbPath).filter((r) => r.status !== 'pending').length >= 2)
    expect(readRows(w.dbPath).map((r) => [r.status, r.error_message])).toEqual([
      ['error', 'HTTP 503 service unavailable: simulated HTTP 503'],
      ['error', 'aborted: client disconnected'],
    ])
    expect(sim.count()).toBe(2) // no retry after the client left
    expect(w.logs.filter((l) => l.includes('unhandled error'))).toEqual([])
  })
})

describe('exhaustion and skips', () => {
  test('when every step fails the answer is 502 chain_exhausted with the request id and every row', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'a+status-503', retries: 0 }, { provider: 'sim2', model: 'b+status-404' }] })
    const res = await w.infer({})
    expect(res.status).toBe(502)
    const { error } = await res.json()
    expect(error.type).toBe('chain_exhausted')
    expect(error.message).toContain('sim/a+status-503: HTTP 503 service unavailable')
    expect(error.message).toContain('sim2/b+status-404: HTTP 404 not found')
    expect(error.request_id).toBe(res.headers.get('x-witness-request-id'))
    const rows = readRows(w.dbPath)
    expect(error.attempts.map((a: { log_id: number }) => a.log_id)).toEqual(rows.map((r) => r.id))
    expect(rows.map((r) => r.status)).toEqual(['error', 'fallback', 'error'])
    expect(rows.some((r) => r.status === 'pending')).toBe(false)
  })

  test('a step whose API key is not set is skipped with a fallback row, and no call is made', async () => {
    const w = await witness(
      { default: [{ provider: 'keyed', model: 'k' }, { provider: 'sim', model: 'ok' }] },
      { providers: { keyed: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'KEYED_API_KEY' } } },
    )
    const res = await w.infer({})
    expect(res.status).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
      ['sim', 'fallback', 'fallback from keyed/k: skipped, API key KEYED_API_KEY is not set'],
      ['sim', 'success', null],
    ])
    expect(sim.requests.map((r) => r.model)).toEqual(['ok'])
  })

  test('a last step without its key still leaves a row saying it was skipped', async () => {
    const w = await witness(
      { default: [{ provider: 'keyed', model: 'k' }] },
      { providers: { keyed: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'KEYED_API_KEY' } } },
    )
    const res = await w.infer({})
    expect(res.status).toBe(502)
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
      ['keyed', 'fallback', 'skipped keyed/k, API key KEYED_API_KEY is not set; no further step'],
    ])
    expect(sim.requests).toHaveLength(0)
  })

  test('the API key is sent upstream and never stored, even when the upstream echoes it in an error', async () => {
    const secret = 'sk-live-THIS-IS-A-SECRET-KEY-123456'
    const w = await witness(
      { default: [{ provider: 'keyed', model: 'k+status-401+echo-key' }] },
      { providers: { keyed: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'KEYED_API_KEY' } } },
      { env: { KEYED_API_KEY: secret } },
    )
    const res = await w.infer({})
    expect(res.status).toBe(502)
    expect(sim.requests[0]!.headers.authorization).toBe(`Bearer ${secret}`)
    const text = await res.text()
    expect(text).not.toContain(secret)
    const rows = readRows(w.dbPath)
    expect(rows[0]!.error_message).toContain('HTTP 401 unauthorized')
    expect(JSON.stringify(rows)).not.toContain(secret)
    expect(JSON.stringify(rows)).not.toContain('THIS-IS-A-SECRET')
    expect(w.logs.join('\n')).not.toContain(secret)
  })

  test('nor when the key has a stray space or line end in the environment, or is echoed encoded or cut short', async () => {
    const key = 'abc/def+ghi=jkl.MNO_pqr~stu'
    const echoes = [key, encodeURIComponent(key), Buffer.from(key).toString('base64'), `${key.slice(0, 20)}...`, JSON.stringify(key).replaceAll('/', '\\/')]
    let next = 0
    const upstream = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response(`{"detail":"bad key ${echoes[next++ % echoes.length]}"}`, { status: 401 }) })
    try {
      for (const stored of [`${key}\r`, ` ${key} `]) {
        const w = await witness(
          { default: [{ provider: 'keyed', model: 'k', retries: 0 }] },
          { providers: { keyed: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1`, api_key_env: 'KEYED_API_KEY' } } },
          { env: { KEYED_API_KEY: stored } },
        )
        for (let i = 0; i < echoes.length; i++) {
          const text = await (await w.infer({})).text()
          for (const echo of echoes) expect(text).not.toContain(echo.replace(/\.\.\.$/, ''))
        }
        const rows = JSON.stringify(readRows(w.dbPath))
        expect(rows).toContain('[redacted]')
        for (const part of ['def+ghi', 'ZGVm', 'def%2Bghi']) expect(rows).not.toContain(part)
      }
    } finally {
      upstream.stop(true)
    }
  })

  test('an error event passed on mid-stream carries no form of the key, not even as an object key, and the prompt not even in part', async () => {
    const key = 'sk-live-ECHOSECRETKEY0123456789abcdef'
    const prompt = 'The launch code is ZEBRA-ALPHA-7731 and the vault PIN is 4242, keep it secret'
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        const auth = req.headers.get('authorization')!
        const sent = (await req.json()) as { messages: { content: string }[] }
        const chunk = { id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' } }] }
        const error = {
          error: {
            message: `denied ${Buffer.from(auth).toString('base64')} ${key.slice(4).toUpperCase()} ${Buffer.from(key).toString('hex')} near "${sent.messages[0]!.content.slice(10, 45)}"`,
            rejected: { [auth]: 'revoked' },
          },
        }
        return new Response(`data: ${JSON.stringify(chunk)}\n\ndata: ${JSON.stringify(error)}\n\n`, { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    try {
      const w = await witness(
        { default: [{ provider: 'keyed', model: 'm', retries: 0 }] },
        { providers: { keyed: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1`, api_key_env: 'KEYED_API_KEY' } } },
        { env: { KEYED_API_KEY: key } },
      )
      const res = await w.post('/v1/chat/completions', { model: 'default', user: 'a', stream: true, messages: [{ role: 'user', content: prompt }] })
      const text = await res.text()
      expect(text).toContain('"rejected":{"Bearer [redacted]":"revoked"}')
      const stored = JSON.stringify(readRows(w.dbPath))
      expect(stored).toContain('[redacted]')
      for (const seen of [text, stored]) {
        for (const leak of [key.slice(8, 20), key.slice(8, 20).toUpperCase(), Buffer.from(key).toString('hex').slice(16, 40), 'ZEBRA-ALPHA', '7731']) expect(seen).not.toContain(leak)
        expect(seen).not.toContain(Buffer.from(`Bearer ${key}`).toString('base64').slice(16, 32))
      }
    } finally {
      upstream.stop(true)
    }
  })

  test('prompt text echoed in an upstream error is not stored, nor answered, however its whitespace was changed', async () => {
    // As sent; its spaces made line breaks or doubled (a message stored has its whitespace collapsed,
    // which must not put the prompt back together); and a prompt of several lines quoted on one.
    // And an indented one quoted JSON-escaped (a body echoed back), as is and collapsed.
    const config = 'Fix this config:\n  user: admin\n  pass: Tr0ub4dor&3x\n  host: db.internal.corp\n'
    const echoes: [string, (text: string) => string][] = [
      ['the launch codes are 0000-1111 and nobody may know', (t) => t],
      ['the launch codes are 0000-1111 and nobody may know', (t) => t.replaceAll(' ', '\n')],
      ['the launch codes are 0000-1111 and nobody may know', (t) => t.replaceAll(' ', '  ')],
      ['the launch codes\n\nare 0000-1111\n  and nobody may know', (t) => t.replace(/\s+/g, ' ')],
      [config, (t) => JSON.stringify({ messages: [{ role: 'user', content: t }] })],
      [config, (t) => JSON.stringify(t).replace(/\s+/g, ' ')],
    ]
    let transform = echoes[0]![1]
    const echo = startSimulator()
    const server = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        const body = (await req.json()) as { messages: { content: string }[] }
        return Response.json({ error: { message: `cannot process: ${transform(body.messages[0]!.content)}` } }, { status: 400 })
      },
    })
    const w = await startWitness(
      simConfig(echo.url, { default: [{ provider: 'echoer', model: 'e' }] }, { providers: { echoer: { type: 'openai', base_url: `http://127.0.0.1:${server.port}/v1` } } }),
    )
    running.push(w)
    for (const [prompt, change] of echoes) {
      transform = change
      const res = await w.post('/v1/infer', { agent: 'a', messages: [{ role: 'user', content: prompt }] })
      expect(res.status).toBe(502)
      const answered = await res.text()
      for (const secret of ['0000-1111', 'Tr0ub4dor', 'db.internal']) expect(answered).not.toContain(secret)
    }
    const rows = readRows(w.dbPath)
    expect(rows.map((row) => row.error_message)).toEqual([
      ...Array(4).fill('HTTP 400 bad request: cannot process: [redacted]'),
      'HTTP 400 bad request: cannot process: {"messages":[{"role":"user","content":"[redacted]"}]}',
      'HTTP 400 bad request: cannot process: "[redacted]"',
    ])
    server.stop(true)
    await echo.stop()
  })
})

describe('cooldown', () => {
  test('after three consecutive failures a target is skipped, then probed once after the cooldown', async () => {
    const clock = manualClock()
    const w = await witness(
      { default: [{ provider: 'sim', model: 'flaky+status-503', retries: 0 }, { provider: 'sim2', model: 'ok' }] },
      { policy: { cooldown_failures: 3, cooldown_s: 60 } },
      { clock },
    )
    for (let i = 0; i < 3; i++) expect((await w.infer({})).status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(3)

    const cooled = await w.infer({})
    expect(cooled.status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(3)
    const skipRow = readRows(w.dbPath).at(-2)!
    expect(skipRow.status).toBe('fallback')
    expect(skipRow.error_message).toMatch(/^fallback from sim\/flaky\+status-503: skipped, cooling down after 3 consecutive failures \(until 2026-11-25T12:01:00\.\d{3}Z\)$/)

    clock.advance(61_000)
    expect((await w.infer({})).status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(4) // the probe
    expect((await w.infer({})).status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(4) // cooling again
  })

  test("the probe after a cooldown is one try, not its step's retries", async () => {
    const clock = manualClock()
    const w = await witness(
      { default: [{ provider: 'sim', model: 'flaky+status-503', retries: 2 }, { provider: 'sim2', model: 'ok' }] },
      { policy: { cooldown_failures: 1, cooldown_s: 60 } },
      { clock },
    )
    expect((await w.infer({})).status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(3)
    clock.advance(61_000)
    expect((await w.infer({})).status).toBe(200)
    expect(sim.requests.filter((r) => r.model.startsWith('flaky'))).toHaveLength(4)
  })

  test('when every step is cooling down they are tried anyway', async () => {
    const w = await witness({ default: [{ provider: 'sim', model: 'down+status-503', retries: 0 }] }, { policy: { cooldown_failures: 1, cooldown_s: 600 } })
    expect((await w.infer({})).status).toBe(502)
    expect((await w.infer({})).status).toBe(502)
    expect(sim.requests).toHaveLength(2)
  })
})

describe('an Anthropic provider in the chain', () => {
  test('an OpenAI-style request is translated to the Messages API and the answer back', async () => {
    const w = await witness({ default: [{ provider: 'simant', model: 'claude-sim+tokens-7-9' }] })
    const res = await w.post('/v1/infer', {
      agent: 'a',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hello there' },
      ],
      max_tokens: 100,
    })
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.message).toEqual({ role: 'assistant', content: 'sim reply to: hello there' })
    expect(body.usage).toEqual({ tokens_in: 7, tokens_out: 9 })
    const received = sim.requests[0]!
    expect(received.path).toBe('/v1/messages')
    expect(received.headers['anthropic-version']).toBe('2023-06-01')
    expect(received.body).toEqual({ model: 'claude-sim+tokens-7-9', system: 'be brief', messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }] }], max_tokens: 100 })
    expect(readRows(w.dbPath)[0]).toMatchObject({ endpoint: `${sim.url}/v1/messages`, tokens_in: 7, tokens_out: 9, status: 'success' })
  })
})

describe('the wait between tries', () => {
  const policy = { backoff_min_ms: 250, backoff_max_ms: 4000 }
  const spread = (waits: number[]) => Math.max(...waits) - Math.min(...waits)
  const draws = (attempt: number, retryAfterMs?: number) => Array.from({ length: 200 }, () => retryWaitMs(policy, attempt, retryAfterMs))

  test('grows from backoff_min_ms, jittered, and stays jittered at backoff_max_ms (callers that failed together do not come back in step)', () => {
    for (const w of draws(1)) expect(w >= 250 && w <= 500).toBe(true)
    for (const w of draws(3)) expect(w >= 1000 && w <= 2000).toBe(true)
    const capped = draws(8)
    for (const w of capped) expect(w >= 2000 && w <= 4000).toBe(true)
    expect(spread(capped)).toBeGreaterThan(1000)
    // backoff_min_ms is a floor even where the cap leaves no room.
    for (const w of Array.from({ length: 50 }, () => retryWaitMs({ backoff_min_ms: 500, backoff_max_ms: 500 }, 4))) expect(w).toBe(500)
  })

  test("a provider's Retry-After is waited out, plus up to a tenth more (at most a second)", () => {
    const waits = draws(1, 5000)
    for (const w of waits) expect(w >= 5000 && w <= 5500).toBe(true)
    expect(spread(waits)).toBeGreaterThan(100)
    for (const w of draws(1, 60_000)) expect(w >= 60_000 && w <= 61_000).toBe(true)
  })
})
