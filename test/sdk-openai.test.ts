/**
 * The official OpenAI SDK as a real caller, pointed at witness by base URL
 * only: text, streams, tools, fallback before the first byte, cut streams,
 * clients that abort, and the rows each case leaves.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { connect } from 'node:net'
import OpenAI from 'openai'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readMeta, readRows } from './support/rows.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

let sim: Simulator
let w: TestWitness
let client: OpenAI

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(
    simConfig(sim.url, {
      default: [{ provider: 'sim', model: 'kimi-k2.5+tokens-11-22+chunks-4' }],
      claude: [{ provider: 'simant', model: 'claude-sonnet-4+tokens-5-6+chunks-3' }],
      tools: [{ provider: 'sim', model: 'kimi-k2.5+tool-get_weather' }],
      fallback: [{ provider: 'sim', model: 'down+status-503', retries: 0 }, { provider: 'sim2', model: 'backup+chunks-3' }],
      cut: [{ provider: 'sim', model: 'cut+chunks-6+cut-3' }, { provider: 'sim2', model: 'never-used' }],
      slow: [{ provider: 'sim', model: 'slow+chunks-60+chunk-delay-50' }],
      stall: [{ provider: 'sim', model: 'stall+chunks-6+stall-2', idle_timeout_ms: 150 }],
      nodone: [{ provider: 'sim', model: 'nodone+no-done' }],
      long: [{ provider: 'sim', model: 'long+chunks-40+chunk-delay-20', timeout_ms: 250 }],
      hang: [{ provider: 'sim', model: 'hang+hang', first_byte_timeout_ms: 100 }, { provider: 'sim2', model: 'rescue' }],
      rejected: [{ provider: 'sim', model: 'too-long+status-400', retries: 0 }],
      overloaded: [{ provider: 'sim', model: 'busy+status-503', retries: 0 }],
    }),
  )
  client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'not-a-provider-key', defaultHeaders: { 'x-agent-name': 'bezalel' }, maxRetries: 0 })
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})
beforeEach(() => sim.reset())

const ask = [{ role: 'user' as const, content: 'What is the weather in Paris?' }]

function rowsOf(requestId: string | null) {
  const ids = new Set(readMeta(w.dbPath).filter((m) => m.request_id === requestId).map((m) => m.log_id))
  return readRows(w.dbPath).filter((r) => ids.has(r.id))
}

describe('OpenAI SDK through witness', () => {
  test('a non-streaming completion: the answer, the served model, one success row with usage', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'default', messages: ask, temperature: 0.1 }).withResponse()
    expect(data.choices[0]!.message.content).toBe('sim reply to: What is the weather in Paris?')
    expect(data.model).toBe('kimi-k2.5')
    expect(data.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 22 })
    const rows = rowsOf(response.headers.get('x-witness-request-id'))
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ agent_name: 'bezalel', provider: 'sim', model: 'kimi-k2.5+tokens-11-22+chunks-4', status: 'success', tokens_in: 11, tokens_out: 22 })
    expect(sim.requests[0]!.body.temperature).toBe(0.1)
  })

  test('a stream arrives chunk by chunk; usage is recorded from it but not forced on the client', async () => {
    const { data: stream, response } = await client.chat.completions.create({ model: 'default', messages: ask, stream: true }).withResponse()
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = []
    for await (const chunk of stream) chunks.push(chunk)
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
    expect(text).toBe('sim reply to: What is the weather in Paris?')
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true) // no usage-only chunk the client did not ask for
    expect(sim.requests[0]!.body.stream_options).toEqual({ include_usage: true })
    // The last event came after the row was committed: it is final already.
    const [row] = rowsOf(response.headers.get('x-witness-request-id'))
    expect(row).toMatchObject({ status: 'success', tokens_in: 11, tokens_out: 22 })
    expect(row!.latency_ms).toBeGreaterThanOrEqual(0)
    const meta = readMeta(w.dbPath).find((m) => m.log_id === row!.id)!
    expect(meta).toMatchObject({ stream: 1, served_model: 'kimi-k2.5', response_id: chunks[0]!.id })
    expect(meta.first_byte_ms).toBeGreaterThanOrEqual(0)
  })

  test('a stream with include_usage gets its usage chunk', async () => {
    const stream = await client.chat.completions.create({ model: 'default', messages: ask, stream: true, stream_options: { include_usage: true } })
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
    expect(usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 22 })
  })

  test('every field the client sends reaches an OpenAI-compatible upstream untouched; only model is replaced', async () => {
    const params = {
      model: 'default',
      messages: [{ role: 'system' as const, content: 'be brief' }, ...ask],
      response_format: {
        type: 'json_schema' as const,
        json_schema: { name: 'weather', strict: true, schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false } },
      },
      seed: 42,
      stop: ['\n\n', 'END'],
      n: 2,
      logprobs: true,
      top_logprobs: 3,
      user: 'end-user-42',
      temperature: 0.2,
      tools: [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
      parallel_tool_calls: false,
    }
    const { response } = await client.chat.completions.create(params).withResponse()
    expect(sim.requests).toHaveLength(1)
    expect(sim.requests[0]!.body).toEqual({ ...params, model: 'kimi-k2.5+tokens-11-22+chunks-4' })
    // The X-Agent-Name header names the agent; `user` went upstream as it was.
    expect(rowsOf(response.headers.get('x-witness-request-id'))).toMatchObject([{ agent_name: 'bezalel', status: 'success' }])

    // Raw fetch, streamed, with fields no SDK knows of: the same, plus only the usage request witness adds.
    const raw = { model: 'default', messages: ask, stream: true, seed: 7, stop: 'END', n: 1, logprobs: false, user: 'u-1', response_format: { type: 'json_object' }, provider: { order: ['groq'] }, reasoning_effort: 'low' }
    const res = await w.post('/v1/chat/completions', raw, { 'x-agent-name': 'bezalel' })
    expect(res.status).toBe(200)
    await res.text()
    expect(sim.requests[1]!.body).toEqual({ ...raw, model: 'kimi-k2.5+tokens-11-22+chunks-4', stream_options: { include_usage: true } })
  })

  test('a tool call round trip', async () => {
    const tools: OpenAI.Chat.Completions.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    ]
    const first = await client.chat.completions.create({ model: 'tools', messages: ask, tools, tool_choice: 'auto' })
    const call = first.choices[0]!.message.tool_calls![0]!
    expect(first.choices[0]!.finish_reason).toBe('tool_calls')
    expect(call.type === 'function' && call.function.name).toBe('get_weather')
    expect(sim.requests[0]!.body.tools).toEqual(tools)
    expect(sim.requests[0]!.body.tool_choice).toBe('auto')
    const second = await client.chat.completions.create({
      model: 'tools',
      messages: [...ask, first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: '14 degrees and cloudy' }],
      tools,
    })
    expect(second.choices[0]!.message.content).toBe('sim reply to tool result: 14 degrees and cloudy')
    expect(readRows(w.dbPath).slice(-2).map((r) => r.status)).toEqual(['success', 'success'])
  })

  test('an OpenAI client over an Anthropic provider: translated both ways, streamed too', async () => {
    const reply = await client.chat.completions.create({ model: 'claude', messages: ask })
    expect(reply.choices[0]!.message.content).toBe('sim reply to: What is the weather in Paris?')
    expect(reply.model).toBe('claude-sonnet-4')
    expect(sim.requests[0]!.path).toBe('/v1/messages')
    const stream = await client.chat.completions.create({ model: 'claude', messages: ask, stream: true, stream_options: { include_usage: true } })
    let text = ''
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? ''
      if (chunk.usage) usage = chunk.usage
    }
    expect(text).toBe('sim reply to: What is the weather in Paris?')
    expect(usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 6 })
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'success', tokens_in: 5, tokens_out: 6 })
  })

  test('fallback before the first byte: the first provider 503s, the second serves the stream', async () => {
    const { data: stream, response } = await client.chat.completions.create({ model: 'fallback', messages: ask, stream: true }).withResponse()
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
    expect(text).toBe('sim reply to: What is the weather in Paris?')
    expect(response.headers.get('x-witness-provider')).toBe('sim2')
    const rows = rowsOf(response.headers.get('x-witness-request-id'))
    expect(rows.map((r) => [r.provider, r.status])).toEqual([['sim', 'error'], ['sim2', 'fallback'], ['sim2', 'success']])
  })

  test('a first byte that never comes times out and falls back', async () => {
    const stream = await client.chat.completions.create({ model: 'hang', messages: ask, stream: true })
    for await (const _ of stream) {
      // drain
    }
    const rows = readRows(w.dbPath).slice(-3)
    expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
      ['sim', 'timeout', 'no first byte within 100 ms'],
      ['sim2', 'fallback', 'fallback from sim/hang+hang: no first byte within 100 ms'],
      ['sim2', 'success', null],
    ])
  })

  test('a stream cut mid-way: the client sees an error, the row says so, no fallback after the first byte', async () => {
    const { data: stream, response } = await client.chat.completions.create({ model: 'cut', messages: ask, stream: true }).withResponse()
    let text = ''
    const failure = await (async () => {
      try {
        for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? ''
      } catch (error) {
        return error as Error
      }
      return null
    })()
    expect(failure).not.toBeNull()
    expect(text.length).toBeGreaterThan(0)
    const rows = rowsOf(response.headers.get('x-witness-request-id'))
    expect(rows).toHaveLength(1)
    expect(rows[0]!.status).toBe('error')
    expect(rows[0]!.error_message).toMatch(/^stream interrupted after \d+ chunks/)
    expect(sim.requests.map((r) => r.model)).toEqual(['cut+chunks-6+cut-3'])
  })

  test('the client aborting mid-stream closes the upstream socket and finishes the row', async () => {
    const { data: stream, response } = await client.chat.completions.create({ model: 'slow', messages: ask, stream: true }).withResponse()
    let seen = 0
    for await (const _ of stream) {
      if (++seen === 3) break // leaving the loop aborts the request
    }
    const requestId = response.headers.get('x-witness-request-id')
    for (let i = 0; i < 100 && rowsOf(requestId)[0]?.status === 'pending'; i++) await Bun.sleep(10)
    const [row] = rowsOf(requestId)
    expect(row!.status).toBe('error')
    expect(row!.error_message).toMatch(/^client disconnected after \d+ chunks$/)
    for (let i = 0; i < 100 && !sim.requests[0]!.aborted; i++) await Bun.sleep(10)
    expect(sim.requests[0]!.aborted).toBe(true)
  })

  test('an idle upstream mid-stream times out: the client gets an error event, the row a timeout', async () => {
    const stream = await client.chat.completions.create({ model: 'stall', messages: ask, stream: true })
    await expect(async () => {
      for await (const _ of stream) {
        // drain
      }
    }).toThrow(/stream idle for 150 ms/)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'timeout', error_message: expect.stringMatching(/^stream idle for 150 ms after \d+ chunks$/) })
  })

  test('a stream longer than timeout_ms is cut with a timeout, counted from the request', async () => {
    const stream = await client.chat.completions.create({ model: 'long', messages: ask, stream: true })
    await expect(async () => {
      for await (const _ of stream) {
        // drain
      }
    }).toThrow(/timeout after 250 ms \(stream, \d+ chunks\)/)
    const row = readRows(w.dbPath).at(-1)!
    expect(row.status).toBe('timeout')
    expect(row.latency_ms).toBeGreaterThanOrEqual(250)
  })

  test('timeout_ms holds when the client stops reading: the upstream is closed and the row finished', async () => {
    // An upstream that streams big chunks for ever, and a client that reads one packet and then
    // nothing: the socket buffers fill, nothing pulls the stream, and only the timer can end it.
    let upstreamClosed = false
    const content = 'x'.repeat(16 * 1024)
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch(req) {
        req.signal.addEventListener('abort', () => (upstreamClosed = true))
        const frame = new TextEncoder().encode(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`)
        return new Response(new ReadableStream({ pull: (c) => c.enqueue(frame) }), { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    const flood = await startWitness({
      providers: { flood: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } },
      chains: { default: [{ provider: 'flood', model: 'm', timeout_ms: 600 }] },
    })
    const socket = connect(Number(new URL(flood.url).port), '127.0.0.1')
    try {
      const body = JSON.stringify({ model: 'default', stream: true, messages: ask })
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Agent-Name: a\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
      await new Promise<void>((resolve) => socket.once('data', () => resolve()))
      socket.pause()
      const deadline = Date.now() + 3_000
      while (readRows(flood.dbPath)[0]?.status === 'pending' && Date.now() < deadline) await Bun.sleep(50)
      const [row] = readRows(flood.dbPath)
      expect(row).toMatchObject({ status: 'timeout', error_message: expect.stringMatching(/^timeout after 600 ms \(stream, \d+ chunks\)$/) })
      // The abort reaches the upstream's side of the socket on its own schedule, maybe after the row's commit.
      while (!upstreamClosed && Date.now() < deadline) await Bun.sleep(20)
      expect(upstreamClosed).toBe(true)
    } finally {
      socket.destroy()
      await flood.stop(0)
      await upstream.stop(true)
    }
  })

  test('a stream that ends without [DONE] is not a clean end', async () => {
    const stream = await client.chat.completions.create({ model: 'nodone', messages: ask, stream: true })
    await expect(async () => {
      for await (const _ of stream) {
        // drain
      }
    }).toThrow(/ended without \[DONE\]/)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'error', error_message: expect.stringContaining('ended without [DONE]') })
  })

  test('errors arrive as SDK exceptions with the witness type inside', async () => {
    const unknown = await client.chat.completions.create({ model: 'gpt-5', messages: ask }).catch((e) => e)
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
    expect(unknown.message).toContain('unknown chain "gpt-5"')
    expect(unknown.code).toBe('unknown_chain')
    const anonymous = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'x', maxRetries: 0 })
    const noAgent = await anonymous.chat.completions.create({ model: 'default', messages: ask }).catch((e) => e)
    expect(noAgent).toBeInstanceOf(OpenAI.BadRequestError)
    expect(noAgent.message).toContain('X-Agent-Name')
    // The OpenAI `user` field names the agent when no header does.
    const byUser = await anonymous.chat.completions.create({ model: 'default', messages: ask, user: 'ezra' })
    expect(byUser.choices[0]!.message.content).toBeTruthy()
    expect(readRows(w.dbPath).at(-1)!.agent_name).toBe('ezra')
  })

  test('a chain that failed only as the same request would again (a 400) says x-should-retry: false, and the SDK does not resend it; a 503 it does', async () => {
    const retrying = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'x', defaultHeaders: { 'x-agent-name': 'bezalel' }, maxRetries: 2 })
    const rejected = await retrying.chat.completions.create({ model: 'rejected', messages: ask }).catch((e) => e)
    expect(rejected).toBeInstanceOf(OpenAI.InternalServerError)
    expect(rejected.headers.get('x-should-retry')).toBe('false')
    expect(sim.count()).toBe(1)
    sim.reset()
    const overloaded = await retrying.chat.completions.create({ model: 'overloaded', messages: ask }).catch((e) => e)
    expect(overloaded.headers.get('x-should-retry')).toBeNull()
    expect(sim.count()).toBe(3)
  })

  test('models.list() shows the chains; models.retrieve() one of them, and an unknown one is a NotFoundError', async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toEqual(['default', 'claude', 'tools', 'fallback', 'cut', 'slow', 'stall', 'nodone', 'long', 'hang', 'rejected', 'overloaded'])
    expect(await client.models.retrieve('claude')).toMatchObject({ id: 'claude', object: 'model', owned_by: 'witness' })
    const unknown = await client.models.retrieve('gpt-9').catch((e) => e)
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError)
    expect(unknown.error).toMatchObject({ code: 'unknown_chain', message: expect.stringContaining('gpt-9') })
  })
})
