/**
 * An error answer whose body stalls (a 429 that sends its headers and half
 * its JSON, then nothing) is still that HTTP error: its body is waited for
 * ERROR_BODY_WAIT_MS at most, or less when the try's own deadline is nearer,
 * and the row records the status, its Retry-After (which the retry honours)
 * and what of the body came. It used to wait for the whole try's timeout and
 * be recorded as a timeout, its status and Retry-After lost.
 */
import { expect, test } from 'bun:test'
import { ERROR_BODY_WAIT_MS } from '../providers/call.ts'
import { readMeta, readRows } from './support/rows.ts'
import { witnessOnce } from './support/witness.ts'

const encoder = new TextEncoder()
let calls = 0

/** The first call of each request gets a stalled error (model `429` or `500`); the next, a good stream. */
const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  idleTimeout: 0,
  async fetch(req) {
    const { model } = (await req.json()) as { model: string }
    calls++
    if (calls % 2 === 1) {
      const stalled = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(encoder.encode('{"error":')) })
      const headers: Record<string, string> = { 'content-type': 'application/json', ...(model === '429' ? { 'retry-after': '1' } : {}) }
      return new Response(stalled, { status: Number(model), headers })
    }
    const chunk = (delta: Record<string, unknown>, finish: string | null) =>
      `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
    return new Response(`${chunk({ role: 'assistant', content: 'ok' }, null)}${chunk({}, 'stop')}data: [DONE]\n\n`, { headers: { 'content-type': 'text/event-stream' } })
  },
})

const witness = witnessOnce(
  () => ({
    providers: { up: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } },
    chains: {
      limited: [{ provider: 'up', model: '429', retries: 1, first_byte_timeout_ms: 5_000 }],
      broken: [{ provider: 'up', model: '500', retries: 0, timeout_ms: 400 }],
    },
  }),
  upstream,
)

test('a 429 whose body stalls is recorded as a 429 after at most ERROR_BODY_WAIT_MS, and retried after its Retry-After', async () => {
  const w = await witness()
  calls = 0
  const res = await w.post('/v1/chat/completions', { model: 'limited', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(res.status).toBe(200)
  expect(await res.text()).toContain('[DONE]')
  const rows = readRows(w.dbPath)
  expect(rows.map((r) => r.status)).toEqual(['error', 'success'])
  expect(rows[0]!.error_message).toMatch(/^HTTP 429 rate limited \(retry-after 1 s\): \{"error": \(the rest of its body did not come within \d+ ms\)$/)
  expect(rows[0]!.latency_ms).toBeLessThan(5_000)
  expect(readMeta(w.dbPath).map((m) => m.http_status)).toEqual([429, 200])
  expect(calls).toBe(2)
})

test("an error whose body stalls past what is left of the try's timeout is still recorded as that error, before the timeout", async () => {
  const w = await witness()
  calls = 0
  const res = await w.post('/v1/chat/completions', { model: 'broken', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(res.status).toBe(502)
  const row = readRows(w.dbPath).at(-1)!
  expect(row.status).toBe('error')
  const waited = Number(/did not come within (\d+) ms\)$/.exec(row.error_message!)?.[1])
  expect(waited).toBeLessThan(400)
  expect(waited).toBeLessThan(ERROR_BODY_WAIT_MS)
  expect(row.error_message).toStartWith('HTTP 500 internal server error: {"error": (the rest of its body')
  expect(readMeta(w.dbPath).at(-1)!.http_status).toBe(500)
})
