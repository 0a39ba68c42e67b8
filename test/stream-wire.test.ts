/**
 * Streaming wire formats against event sequences from the providers'
 * documentation: the SSE reader, the facts each adapter reads from a stream,
 * and the translation of streams between the two formats.
 */
import { describe, expect, test } from 'bun:test'
import { anthropicAdapter } from '../providers/anthropic.ts'
import { openaiAdapter } from '../providers/openai.ts'
import { MAX_EVENT_CHARS, SseReader } from '../providers/sse.ts'
import { foldEvents } from '../providers/translate/fold-events.ts'
import { streamTranslator } from '../providers/translate/stream.ts'
import { type Adapter, MalformedResponseError, type SseEvent, newStreamFacts } from '../providers/types.ts'

const fixture = (name: string) => Bun.file(`${import.meta.dir}/fixtures/${name}.sse`).text()

/** A byte stream that delivers `text` in pieces of the given sizes (cycled). */
function bytes(text: string, sizes: number[] = [text.length]): ReadableStream<Uint8Array> {
  const data = new TextEncoder().encode(text)
  let offset = 0
  let i = 0
  return new ReadableStream({
    pull(controller) {
      if (offset >= data.length) return controller.close()
      const size = sizes[i++ % sizes.length]!
      controller.enqueue(data.slice(offset, offset + size))
      offset += size
    },
  })
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<SseEvent[]> {
  const reader = new SseReader(stream)
  const events: SseEvent[] = []
  for (let e = await reader.next(); e; e = await reader.next()) events.push(e)
  return events
}

/** The JSON payloads of SSE text frames. */
function payloads(frames: string[]): unknown[] {
  return frames.flatMap((f) => f.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6))).map((d) => (d === '[DONE]' ? d : JSON.parse(d)))
}

async function translate(name: string, from: Adapter, to: 'openai' | 'anthropic', includeUsage = false) {
  const events = await readAll(bytes(await fixture(name)))
  const t = streamTranslator(from.wire, to, { includeUsage, createdS: 1700000000, model: 'asked-for', provider: 'up' })
  const facts = newStreamFacts()
  const frames: string[] = []
  for (const e of events) {
    from.observe(e, facts)
    frames.push(...t.push(e))
  }
  return { frames, end: t.finish(), facts }
}

describe('the SSE reader', () => {
  test('events are the same however the bytes are split', async () => {
    const text = await fixture('anthropic-stream')
    const whole = await readAll(bytes(text))
    expect(whole).toHaveLength(8)
    expect(whole[0]!.event).toBe('message_start')
    for (const sizes of [[1], [3, 7], [64]]) expect(await readAll(bytes(text, sizes))).toEqual(whole)
  })

  test('CRLF lines, comments, multi-line data and a last event without its blank line', async () => {
    const events = await readAll(bytes(': keep-alive\r\n\r\nevent: a\r\ndata: one\r\ndata: two\r\nid: 7\r\n\r\ndata: {"x":1}\n\n: OPENROUTER PROCESSING\n\ndata: [DONE]'))
    expect(events).toEqual([
      { event: 'a', data: 'one\ntwo' },
      { event: null, data: '{"x":1}' },
      { event: null, data: '[DONE]' },
    ])
  })

  test('line ends mixed within a blank line (LF then CRLF, CR then CRLF) end an event, however the bytes are split; CRLF is one line end', async () => {
    const text = 'data: {"a":1}\n\r\ndata: {"b":2}\r\r\ndata: {"c":3}\r\ndata: {"d":4}\r\n\r\ndata: [DONE]\n\n'
    const expected = [
      { event: null, data: '{"a":1}' },
      { event: null, data: '{"b":2}' },
      { event: null, data: '{"c":3}\n{"d":4}' },
      { event: null, data: '[DONE]' },
    ]
    expect(await readAll(bytes(text))).toEqual(expected)
    for (const sizes of [[1], [2], [3, 5]]) expect(await readAll(bytes(text, sizes))).toEqual(expected)
  })

  test('an event with blank data (a bare `data:` line, sent to keep a connection open) carries nothing and is skipped', async () => {
    const events = await readAll(bytes('data: {"x":1}\n\ndata:\n\ndata: \n\ndata: {"y":2}\n\n'))
    expect(events).toEqual([
      { event: null, data: '{"x":1}' },
      { event: null, data: '{"y":2}' },
    ])
  })

  test('an event of 8 MB arriving in 16 KB reads is searched once, not again at every read: the work is linear in its size', async () => {
    const content = 'A'.repeat(8 * 1024 * 1024)
    const text = `data: {"big":"${content}"}\r\n\r\ndata: {"after":1}\n\n`
    const reads = Math.ceil(text.length / 16384)
    const reader = new SseReader(bytes(text, [16384]))
    const big = await reader.next()
    expect(big!.data.length).toBe(content.length + 10)
    expect(JSON.parse(big!.data).big).toBe(content)
    expect(await reader.next()).toEqual({ event: null, data: '{"after":1}' })
    expect(await reader.next()).toBeNull()
    // Its pieces are joined once, when its blank line has come: not the whole event again at every read.
    expect(reader.joinedChars).toBeLessThanOrEqual(text.length)
    // Each read's text is searched once, with the three characters before it.
    expect(reader.searchedChars).toBeLessThanOrEqual(text.length + 3 * reads)
  })

  test('an event longer than 16 MB is refused as malformed, in small reads too, and events before it still come', async () => {
    const text = `data: {"x":1}\n\ndata: ${'x'.repeat(MAX_EVENT_CHARS + 65536)}\n\n`
    const reader = new SseReader(bytes(text, [16384, 1000, 3]))
    expect(await reader.next()).toEqual({ event: null, data: '{"x":1}' })
    await expect(reader.next()).rejects.toThrow(new MalformedResponseError('an event longer than 16 MB'))
  })

  test('a broken connection rejects instead of looking like an end', async () => {
    let sent = false
    const broken = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent) return c.error(new Error('reset'))
        sent = true
        c.enqueue(new TextEncoder().encode('data: 1\n\ndata: 2'))
      },
    })
    const reader = new SseReader(broken)
    expect(await reader.next()).toEqual({ event: null, data: '1' })
    await expect(reader.next()).rejects.toThrow('reset')
  })
})

describe('facts read from documented streams', () => {
  test('OpenAI: id, model, usage from the usage chunk, content chunks, [DONE]', async () => {
    const facts = newStreamFacts()
    for (const e of await readAll(bytes(await fixture('openai-stream')))) openaiAdapter.observe(e, facts)
    expect(facts).toEqual({ responseId: 'chatcmpl-123', servedModel: 'gpt-4o-mini', usage: { tokensIn: 9, tokensOut: 12, costUsd: null }, chunks: 4, content: true, done: true, error: null, errorCode: null, errorRaisable: false })
  })

  test('Anthropic: id, model, input from message_start, output from message_delta, message_stop', async () => {
    const facts = newStreamFacts()
    for (const e of await readAll(bytes(await fixture('anthropic-stream')))) anthropicAdapter.observe(e, facts)
    expect(facts).toEqual({ responseId: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY', servedModel: 'claude-opus-4-6', usage: { tokensIn: 25, tokensOut: 15, costUsd: null }, chunks: 2, content: true, done: true, error: null, errorCode: null, errorRaisable: false })
  })
})

describe('a stream cut before its end', () => {
  test("Anthropic: cut before message_delta, its output count is not known (null), not message_start's placeholder of 1", async () => {
    const facts = newStreamFacts()
    const events = (await readAll(bytes(await fixture('anthropic-stream')))).filter((e) => e.event !== 'message_delta' && e.event !== 'message_stop')
    for (const e of events) anthropicAdapter.observe(e, facts)
    expect(facts.chunks).toBeGreaterThan(0)
    expect(facts.usage).toMatchObject({ tokensIn: 25, tokensOut: null })
    expect(facts.done).toBe(false)
  })

  test("Anthropic: a whole stream whose message_delta gives no count (a proxy's) keeps message_start's", async () => {
    const facts = newStreamFacts()
    const start = { type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3, output_tokens: 7 } } }
    for (const e of [
      { event: 'message_start', data: JSON.stringify(start) },
      { event: 'content_block_delta', data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hi' } }) },
      { event: 'message_delta', data: JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' } }) },
      { event: 'message_stop', data: JSON.stringify({ type: 'message_stop' }) },
    ]) anthropicAdapter.observe(e, facts)
    expect(facts.usage).toMatchObject({ tokensIn: 3, tokensOut: 7 })
  })
})

describe('Anthropic error events', () => {
  test('one named `error` whose JSON lacks "type":"error" (as a proxy may send it) is still an error', () => {
    for (const data of [{ error: { type: 'overloaded_error', message: 'Overloaded' } }, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, { message: 'Overloaded' }, { error: 'Overloaded' }]) {
      const facts = newStreamFacts()
      anthropicAdapter.observe({ event: 'error', data: JSON.stringify(data) }, facts)
      expect(facts.error).toBe('Overloaded')
    }
    const unnamed = newStreamFacts()
    anthropicAdapter.observe({ event: null, data: JSON.stringify({ type: 'error', error: { message: 'Overloaded' } }) }, unnamed)
    expect(unnamed.error).toBe('Overloaded')
  })
})

describe('the first event carrying content (time to first token)', () => {
  /** The index of the first event after which `facts.content` holds. */
  async function firstContentAt(adapter: Adapter, name: string): Promise<number> {
    const facts = newStreamFacts()
    const events = await readAll(bytes(await fixture(name)))
    return events.findIndex((e) => {
      adapter.observe(e, facts)
      return facts.content
    })
  }

  test('OpenAI: a role-only chunk with empty content is not it; the first text delta is', async () => {
    expect(await firstContentAt(openaiAdapter, 'openai-stream')).toBe(1)
  })

  test('OpenAI: a tool call counts from the chunk that names it, even with content null', async () => {
    expect(await firstContentAt(openaiAdapter, 'openai-tool-stream')).toBe(0)
  })

  test('Anthropic: message_start, an empty text block and ping are not it; the first text delta is', async () => {
    const events = await readAll(bytes(await fixture('anthropic-stream')))
    const at = await firstContentAt(anthropicAdapter, 'anthropic-stream')
    expect(events.slice(0, at).map((e) => e.event)).toEqual(['message_start', 'content_block_start', 'ping'])
    expect(events[at]!.event).toBe('content_block_delta')
  })

  test('Anthropic: a tool_use block counts from its start, which carries the tool name', () => {
    const facts = newStreamFacts()
    anthropicAdapter.observe({ event: 'content_block_start', data: JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 't1', name: 'get_weather', input: {} } }) }, facts)
    expect(facts.content).toBe(true)
  })
})

describe('stream translation', () => {
  test('OpenAI to OpenAI passes frames through, strips the usage chunk the client did not ask for, holds [DONE]', async () => {
    const { frames, end } = await translate('openai-stream', openaiAdapter, 'openai')
    expect(payloads(frames)).toHaveLength(4)
    expect(payloads(frames).every((p) => (p as { choices: unknown[] }).choices.length === 1)).toBe(true)
    expect(end).toEqual(['data: [DONE]\n\n'])
    const withUsage = await translate('openai-stream', openaiAdapter, 'openai', true)
    expect(payloads(withUsage.frames)).toHaveLength(5)
  })

  test('Anthropic to Anthropic passes events through and holds message_stop for the end', async () => {
    const { frames, end } = await translate('anthropic-stream', anthropicAdapter, 'anthropic')
    expect(frames).toHaveLength(7)
    expect(frames.some((f) => f.includes('message_stop'))).toBe(false)
    expect(end).toEqual(['event: message_stop\ndata: {"type": "message_stop"}\n\n'])
  })

  test('Anthropic text to OpenAI chunks, with usage when asked', async () => {
    const { frames, end } = await translate('anthropic-stream', anthropicAdapter, 'openai', true)
    const chunks = payloads(frames) as { id: string; model: string; choices: { delta: { content?: string; role?: string }; finish_reason: string | null }[] }[]
    expect(chunks[0]).toMatchObject({ id: 'msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY', model: 'claude-opus-4-6', choices: [{ delta: { role: 'assistant' } }] })
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Hello!')
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop')
    expect(payloads(end)).toEqual([expect.objectContaining({ choices: [], usage: { prompt_tokens: 25, completion_tokens: 15, total_tokens: 40 } }), '[DONE]'])
  })

  test('Anthropic text already in a content_block_start reaches an OpenAI client before the deltas', () => {
    const t = streamTranslator('anthropic', 'openai', { includeUsage: false, createdS: 1, model: 'claude-x', provider: 'up' })
    const events: SseEvent[] = [
      { event: 'message_start', data: JSON.stringify({ type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3, output_tokens: 1 } } }) },
      { event: 'content_block_start', data: JSON.stringify({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: 'Hello' } }) },
      { event: 'content_block_delta', data: JSON.stringify({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' world' } }) },
    ]
    const chunks = payloads(events.flatMap((e) => t.push(e))) as { choices: { delta: { content?: string } }[] }[]
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Hello world')
  })

  test("Anthropic's extended thinking reaches an OpenAI client as reasoning_content deltas before the text; its signature does not", () => {
    const t = streamTranslator('anthropic', 'openai', { includeUsage: false, createdS: 1, model: 'claude-x', provider: 'up' })
    const data = (json: Record<string, unknown>): SseEvent => ({ event: String(json.type), data: JSON.stringify(json) })
    const events: SseEvent[] = [
      data({ type: 'message_start', message: { id: 'msg_1', model: 'claude-x', usage: { input_tokens: 3, output_tokens: 1 } } }),
      data({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }),
      data({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Let me add: ' } }),
      data({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: '2 + 2 = 4.' } }),
      data({ type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBCgIYAhIM' } }),
      data({ type: 'content_block_stop', index: 0 }),
      data({ type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } }),
      data({ type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: '4' } }),
    ]
    const deltas = (payloads(events.flatMap((e) => t.push(e))) as { choices: { delta: Record<string, unknown> }[] }[]).map((c) => c.choices[0]!.delta)
    expect(deltas).toEqual([{ role: 'assistant', content: '' }, { reasoning_content: 'Let me add: ' }, { reasoning_content: '2 + 2 = 4.' }, { content: '4' }])
  })

  test("an OpenAI stream whose chunks carry no id still opens a Messages stream with a message id; its usage, none sent, is told as 0 (the SDKs need numbers)", () => {
    const t = streamTranslator('openai', 'anthropic', { includeUsage: false, createdS: 1, model: 'gpt-x', provider: 'up' })
    const frames = [
      ...t.push({ event: null, data: JSON.stringify({ object: 'chat.completion.chunk', choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' } }] }) }),
      ...t.push({ event: null, data: JSON.stringify({ id: 'chatcmpl-later', object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }) }),
      ...t.finish(),
    ]
    const events = payloads(frames) as Record<string, any>[]
    expect(events[0]!.type).toBe('message_start')
    expect(events[0]!.message.id).toMatch(/^msg_[0-9a-f-]{32,}$/)
    expect(events[0]!.message.usage).toEqual({ input_tokens: 0, output_tokens: 0 })
    expect(events.find((e) => e.type === 'message_delta')!.usage).toMatchObject({ input_tokens: 0, output_tokens: 0 })
  })

  test('Anthropic tool use to OpenAI tool_calls', async () => {
    const { frames } = await translate('anthropic-tool-stream', anthropicAdapter, 'openai')
    const deltas = (payloads(frames) as { choices: { delta: { tool_calls?: { index: number; id?: string; function: { name?: string; arguments: string } }[] }; finish_reason: string | null }[] }[]).map((c) => c.choices[0]!)
    const calls = deltas.flatMap((d) => d.delta.tool_calls ?? [])
    expect(calls[0]).toMatchObject({ index: 0, id: 'toolu_01T1x1fJ34qAmk2tNTrN7Up6', function: { name: 'get_weather', arguments: '' } })
    expect(JSON.parse(calls.map((c) => c.function.arguments).join(''))).toEqual({ location: 'San Francisco, CA' })
    expect(deltas.at(-1)!.finish_reason).toBe('tool_calls')
  })

  test('OpenAI text to Anthropic events, usage and stop reason in the final message_delta', async () => {
    const { frames, end } = await translate('openai-stream', openaiAdapter, 'anthropic')
    const events = payloads([...frames, ...end]) as { type: string; [k: string]: unknown }[]
    expect(events.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    expect(events[0]).toMatchObject({ message: { id: 'chatcmpl-123', model: 'gpt-4o-mini', role: 'assistant' } })
    expect(events.at(-2)).toEqual({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 9, output_tokens: 12 } })
  })

  test('OpenAI tool_calls to Anthropic tool_use blocks', async () => {
    const { frames, end } = await translate('openai-tool-stream', openaiAdapter, 'anthropic')
    const events = payloads([...frames, ...end]) as { type: string; content_block?: { type: string; name?: string; id?: string }; delta?: { partial_json?: string; stop_reason?: string } }[]
    const start = events.find((e) => e.type === 'content_block_start')!
    expect(start.content_block).toMatchObject({ type: 'tool_use', id: 'call_DdmO9pD3xa9XTPNJ32zg2hcA', name: 'get_weather' })
    expect(JSON.parse(events.map((e) => e.delta?.partial_json ?? '').join(''))).toEqual({ location: 'Paris' })
    expect(events.find((e) => e.type === 'message_delta')!.delta!.stop_reason).toBe('tool_use')
  })

  test('parallel calls an upstream interleaves by index become whole tool_use blocks one after another, each delta inside its open block', () => {
    const t = streamTranslator('openai', 'anthropic', { includeUsage: false, createdS: 0, model: 'm', provider: 'up' })
    const chunk = (toolCalls: unknown[] | null, finish: string | null = null) => ({
      event: null,
      data: JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: toolCalls ? { tool_calls: toolCalls } : {}, finish_reason: finish }] }),
    })
    const call = (index: number, id: string, name: string) => ({ index, id, type: 'function', function: { name, arguments: '' } })
    const args = (index: number, text: string) => ({ index, function: { arguments: text } })
    const frames = [
      ...t.push(chunk([call(0, 'call_A', 'get_weather'), call(1, 'call_B', 'get_time'), call(2, 'call_C', 'noop')])),
      ...t.push(chunk([args(1, '{"tz":')])),
      ...t.push(chunk([args(0, '{"city":')])),
      ...t.push(chunk([args(1, '"CET"}'), args(0, '"Paris"}')])),
      ...t.push(chunk(null, 'tool_calls')),
      ...t.finish(),
    ]
    const events = payloads(frames) as { type: string; index?: number; content_block?: { id: string; name: string }; delta?: { partial_json?: string; stop_reason?: string } }[]
    // One block open at a time, in order: a delta or stop only for the block open now.
    let open: number | null = null
    let next = 0
    const blocks: { id: string; name: string; json: string }[] = []
    for (const e of events) {
      if (e.type === 'content_block_start') {
        expect([open, e.index]).toEqual([null, next++])
        open = e.index!
        blocks.push({ id: e.content_block!.id, name: e.content_block!.name, json: '' })
      } else if (e.type === 'content_block_delta') {
        expect(e.index).toBe(open!)
        blocks[open!]!.json += e.delta!.partial_json
      } else if (e.type === 'content_block_stop') {
        expect(e.index).toBe(open!)
        open = null
      }
    }
    expect(blocks.map((b) => [b.id, b.name, b.json === '' ? {} : JSON.parse(b.json)])).toEqual([
      ['call_A', 'get_weather', { city: 'Paris' }],
      ['call_B', 'get_time', { tz: 'CET' }],
      ['call_C', 'noop', {}],
    ])
    expect(events.find((e) => e.type === 'message_delta')!.delta!.stop_reason).toBe('tool_use')
  })

  test('an OpenAI stream with nothing before [DONE] is still a whole Messages stream: message_start first', () => {
    const t = streamTranslator('openai', 'anthropic', { includeUsage: false, createdS: 0, model: 'asked-for', provider: 'up' })
    const frames = [...t.push({ event: null, data: '[DONE]' }), ...t.finish()]
    const events = frames.map((f) => JSON.parse(f.split('\n')[1]!.slice('data: '.length)))
    expect(events.map((e) => e.type)).toEqual(['message_start', 'message_delta', 'message_stop'])
    // Its message names the model witness asked for (the SDK's types say a string, never null).
    expect(events[0].message.model).toBe('asked-for')
  })

  test('failures are proper error events in each format', () => {
    expect(streamTranslator('openai', 'openai', { includeUsage: false, createdS: 0, model: 'asked-for', provider: 'up' }).fail('stream_interrupted', 'cut')).toEqual([
      'data: {"error":{"message":"cut","type":"stream_interrupted","code":"stream_interrupted","param":null}}\n\n',
    ])
    expect(streamTranslator('openai', 'anthropic', { includeUsage: false, createdS: 0, model: 'asked-for', provider: 'up' }).fail('stream_timeout', 'idle')).toEqual([
      'event: error\ndata: {"type":"error","error":{"type":"stream_timeout","message":"idle"}}\n\n',
    ])
  })
})

describe('an Anthropic event stream folded into one message (an upstream that streamed unasked)', () => {
  const ev = (json: Record<string, unknown>): SseEvent => ({ event: json.type as string, data: JSON.stringify(json) })
  const stream = (deltas: string[]) => [
    ev({ type: 'message_start', message: { id: 'msg_f', type: 'message', role: 'assistant', model: 'claude-x', content: [], usage: { input_tokens: 3, output_tokens: 1 } } }),
    ev({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_F', name: 'get_weather', input: { city: 'Whole' } } }),
    ...deltas.map((partial_json) => ev({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json } })),
    ev({ type: 'content_block_stop', index: 0 }),
    ev({ type: 'message_delta', delta: { stop_reason: 'tool_use' }, usage: { output_tokens: 9 } }),
    ev({ type: 'message_stop' }),
  ]
  test("a tool call's input is its start's when no delta says more (empty deltas included), and the deltas' when they do, as the SDK and the stream translation read it", () => {
    const inputOf = (deltas: string[]) => ((foldEvents('anthropic', stream(deltas)).content as { input: unknown }[])[0]!).input
    expect(inputOf([])).toEqual({ city: 'Whole' })
    expect(inputOf([''])).toEqual({ city: 'Whole' })
    expect(inputOf(['{"city":', '"Delta"}'])).toEqual({ city: 'Delta' })
  })
})
