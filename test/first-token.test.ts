/**
 * Time to first token: request_log_meta.first_token_ms is the time to the
 * first upstream event carrying content, beside first_byte_ms (the first
 * event of any kind: a role-only chunk, message_start). The fake upstreams
 * send their opening events, then hold the content until the test lets it
 * go, having moved the injected clock on: the gap is exact, not a sleep.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { Server } from 'bun'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readMeta, readRows } from './support/rows.ts'
import { manualClock, simConfig, startWitness, type TestWitness } from './support/witness.ts'

const GAP_MS = 5_000

/** An upstream whose streams send their opening events at once and their content once `release()` is called. */
interface GatedUpstream {
  url: string
  release(): void
  stop(): Promise<void>
}

function gatedUpstream(): GatedUpstream {
  let release = () => {}
  const encoder = new TextEncoder()
  const sse = (frames: string[]) => frames.map((f) => encoder.encode(f))
  const openai = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-g', object: 'chat.completion.chunk', created: 1, model: 'served-m', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
  const anthropic = (type: string, data: Record<string, unknown> = {}) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  const server: Server<undefined> = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      const path = new URL(req.url).pathname
      const body = (await req.json()) as { model: string }
      // `+silent`: a stream that ends without any content.
      const silent = body.model.endsWith('+silent')
      const gate = new Promise<void>((resolve) => (release = resolve))
      const [opening, content, ending] = path.endsWith('/messages')
        ? [
            [
              anthropic('message_start', { message: { id: 'msg_g', type: 'message', role: 'assistant', model: 'served-m', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } }),
              anthropic('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
              anthropic('ping'),
            ],
            silent ? [] : [anthropic('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Hello' } })],
            [anthropic('content_block_stop', { index: 0 }), anthropic('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 1 } }), anthropic('message_stop')],
          ]
        : [
            [openai({ role: 'assistant', content: '' })],
            silent ? [] : [openai({ content: 'Hello' })],
            [openai({}, 'stop'), 'data: [DONE]\n\n'],
          ]
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(c) {
            for (const f of sse(opening)) c.enqueue(f)
            await gate
            for (const f of sse([...content, ...ending])) c.enqueue(f)
            c.close()
          },
        }),
        { headers: { 'content-type': 'text/event-stream' } },
      )
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, release: () => release(), stop: () => server.stop(true) }
}

let upstream: GatedUpstream
let sim: Simulator
let w: TestWitness
const clock = manualClock()

beforeAll(async () => {
  upstream = gatedUpstream()
  sim = startSimulator()
  w = await startWitness(
    simConfig(
      sim.url,
      {
        default: [{ provider: 'gated', model: 'm' }],
        claude: [{ provider: 'gatedant', model: 'c' }],
        silent: [{ provider: 'gated', model: 'm+silent' }],
        sim: [{ provider: 'sim', model: 'm' }],
      },
      { providers: { gated: { type: 'openai', base_url: `${upstream.url}/v1` }, gatedant: { type: 'anthropic', base_url: `${upstream.url}/v1` } } },
    ),
    { clock },
  )
})
afterAll(async () => {
  await w.stop(0)
  await upstream.stop()
  await sim.stop()
})

const ask = [{ role: 'user' as const, content: 'hi' }]

/** The meta of the request's only row. */
function metaOf(requestId: string | null) {
  const meta = readMeta(w.dbPath).filter((m) => m.request_id === requestId)
  expect(meta).toHaveLength(1)
  return meta[0]!
}

describe('first_token_ms', () => {
  test('a stream whose first chunk is role-only: first_token_ms counts to the content, first_byte_ms to the role chunk', async () => {
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'x-agent-name': 'ezra' } })
    const { data: stream, response } = await client.chat.completions.create({ model: 'default', messages: ask, stream: true }).withResponse()
    const texts: string[] = []
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta
      if (delta?.role === 'assistant' && !delta.content) {
        // The role chunk reached the client, so witness has read it: now the content comes later.
        clock.advance(GAP_MS)
        upstream.release()
      }
      if (delta?.content) texts.push(delta.content)
    }
    expect(texts).toEqual(['Hello'])
    const meta = metaOf(response.headers.get('x-witness-request-id'))
    expect(meta.first_byte_ms).not.toBeNull()
    expect(meta.first_byte_ms!).toBeLessThan(GAP_MS)
    expect(meta.first_token_ms!).toBeGreaterThanOrEqual(meta.first_byte_ms! + GAP_MS)
    expect(readRows(w.dbPath).find((r) => r.id === meta.log_id)!.latency_ms!).toBeGreaterThanOrEqual(meta.first_token_ms!)

    // The story of the request shows both.
    const story = await (await fetch(`${w.url}/requests/${meta.log_id}`)).json()
    expect(story.request.rows[0]).toMatchObject({ first_byte_ms: meta.first_byte_ms, first_token_ms: meta.first_token_ms })
  })

  test('an Anthropic stream: message_start, an empty text block and ping come first; the first text delta is the first token', async () => {
    const client = new Anthropic({ baseURL: w.url, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'x-agent-name': 'ezra' } })
    const { data: stream, response } = await client.messages.create({ model: 'claude', max_tokens: 10, messages: ask, stream: true }).withResponse()
    const text: string[] = []
    for await (const event of stream) {
      if (event.type === 'message_start') {
        clock.advance(GAP_MS)
        upstream.release()
      }
      if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text.push(event.delta.text)
    }
    expect(text).toEqual(['Hello'])
    const meta = metaOf(response.headers.get('x-witness-request-id'))
    expect(meta.first_token_ms!).toBeGreaterThanOrEqual(meta.first_byte_ms! + GAP_MS)
  })

  test('a stream that carried no content records first_byte_ms and a null first_token_ms', async () => {
    const res = await w.post('/v1/chat/completions', { model: 'silent', messages: ask, stream: true }, { 'x-agent-name': 'ezra' })
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    for (let part = await reader.read(); !part.done; part = await reader.read()) {
      const first = text === ''
      text += decoder.decode(part.value)
      if (first) upstream.release()
    }
    expect(text).toContain('data: [DONE]')
    const meta = metaOf(res.headers.get('x-witness-request-id'))
    expect(meta.first_byte_ms).not.toBeNull()
    expect(meta.first_token_ms).toBeNull()
    expect(readRows(w.dbPath).find((r) => r.id === meta.log_id)!.status).toBe('success')
  })

  test('a call that did not stream records neither', async () => {
    const res = await w.post('/v1/chat/completions', { model: 'sim', messages: ask }, { 'x-agent-name': 'ezra' })
    expect(res.status).toBe(200)
    const meta = metaOf(res.headers.get('x-witness-request-id'))
    expect([meta.stream, meta.first_byte_ms, meta.first_token_ms]).toEqual([0, null, null])
    const story = await (await fetch(`${w.url}/requests/${meta.log_id}`)).json()
    expect(story.request.rows[0].first_token_ms).toBeNull()
  })
})
