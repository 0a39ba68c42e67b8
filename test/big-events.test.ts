/**
 * Large stream events through witness, arriving in 16 KB pieces as they do
 * over TLS: a generated image as one base64 delta reaches the client whole,
 * in either API's format, and a first event past the 16 MB ceiling is
 * recorded as malformed (it used to be read so slowly that the first-byte
 * timeout fired first). The reader's linear work is counted in
 * stream-wire.test.ts; here only what the client and the row see.
 */
import { describe, expect, test } from 'bun:test'
import { MAX_EVENT_CHARS } from '../providers/sse.ts'
import { readRows } from './support/rows.ts'
import { witnessOnce } from './support/witness.ts'

const encoder = new TextEncoder()
const BIG = 'A'.repeat(8 * 1024 * 1024)
const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-big', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
const usage = `data: ${JSON.stringify({ id: 'chatcmpl-big', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } })}\n\n`

/** The stream each model answers with. */
const STREAMS: Record<string, () => string> = {
  big: () => chunk({ role: 'assistant', content: '' }) + chunk({ content: BIG }) + chunk({}, 'stop') + usage + 'data: [DONE]\n\n',
  'too-big-first': () => `data: ${'x'.repeat(MAX_EVENT_CHARS + 65536)}\n\ndata: [DONE]\n\n`,
}

const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const bytes = encoder.encode(STREAMS[((await req.json()) as { model: string }).model]!())
    let at = 0
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        if (at >= bytes.length) return stream.close()
        stream.enqueue(bytes.subarray(at, at + 16384))
        at += 16384
        if ((at / 16384) % 64 === 0) await Bun.sleep(0) // let the pieces go out as separate reads
      },
    })
    return new Response(body, { headers: { 'content-type': 'text/event-stream' } })
  },
})

const witness = witnessOnce(
  () => ({
    providers: { up: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } },
    chains: Object.fromEntries(Object.keys(STREAMS).map((m) => [m, [{ provider: 'up', model: m, retries: 0 }]])),
  }),
  upstream,
)

/** The JSON of each `data:` line of an SSE body ([DONE] left out). */
function dataOf(text: string): Record<string, any>[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
    .map((l) => JSON.parse(l.slice(6)))
}

describe('an 8 MB event arriving in 16 KB pieces', () => {
  test('reaches an OpenAI client whole, and the row is a success with its tokens', async () => {
    const w = await witness()
    const res = await w.post('/v1/chat/completions', { model: 'big', stream: true, messages: [{ role: 'user', content: 'draw' }] }, { 'x-agent-name': 'ezra' })
    expect(res.status).toBe(200)
    const content = dataOf(await res.text()).map((c) => c.choices?.[0]?.delta?.content ?? '').join('')
    expect(content).toBe(BIG)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ model: 'big', status: 'success', tokens_in: 11, tokens_out: 7 })
  })

  test('reaches an Anthropic client whole, translated into a text delta', async () => {
    const w = await witness()
    const res = await w.post('/v1/messages', { model: 'big', stream: true, max_tokens: 10, messages: [{ role: 'user', content: 'draw' }] }, { 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' })
    expect(res.status).toBe(200)
    const text = dataOf(await res.text()).map((e) => (e.type === 'content_block_delta' ? e.delta.text : '')).join('')
    expect(text).toBe(BIG)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ model: 'big', status: 'success', tokens_in: 11, tokens_out: 7 })
  })
})

test('a first event longer than 16 MB, arriving in 16 KB pieces, is recorded as malformed', async () => {
  const w = await witness()
  const res = await w.post('/v1/chat/completions', { model: 'too-big-first', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(res.status).toBe(502)
  await res.text()
  expect(readRows(w.dbPath).at(-1)).toMatchObject({ model: 'too-big-first', status: 'error', error_message: 'malformed response: an event longer than 16 MB' })
})
