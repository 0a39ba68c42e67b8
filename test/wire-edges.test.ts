/**
 * Wire formats at their edges, with the official SDKs against a loopback
 * upstream sending exact bytes: what the SDK gets through witness matches
 * what it would get from the provider, and the row says what happened.
 * Anthropic cache tokens in a translated stream, a tool called without
 * input, tool calls without an `index` (Gemini's OpenAI endpoint), usage
 * inside the choice (Moonshot's Kimi), an event of several `data:` lines,
 * and tool ids Anthropic would refuse.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { readMeta, readRows } from './support/rows.ts'
import { type TestWitness, startWitness } from './support/witness.ts'

type Handler = (body: Record<string, any>) => Response
let handler: Handler = () => new Response('not set', { status: 500 })
const received: Record<string, any>[] = []
const receivedHeaders: Headers[] = []
const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    const body = (await req.json()) as Record<string, any>
    received.push(body)
    receivedHeaders.push(req.headers)
    return handler(body)
  },
})
let w: TestWitness
beforeAll(async () => {
  const base = `http://127.0.0.1:${upstream.port}/v1`
  w = await startWitness({
    providers: {
      oai: { type: 'openai', base_url: base },
      strict: { type: 'openai', base_url: base, stream_usage: false },
      quiet: { type: 'openai', base_url: base, send_reasoning: false },
      ant: { type: 'anthropic', base_url: base },
      antb: { type: 'anthropic', base_url: base, headers: { 'Anthropic-Beta': 'fleet-beta-1' } },
      antl: { type: 'anthropic', base_url: base, default_max_tokens: 32000 },
    },
    chains: {
      o: [{ provider: 'oai', model: 'gpt-x', retries: 0 }],
      strict: [{ provider: 'strict', model: 'gpt-x', retries: 0 }],
      quiet: [{ provider: 'quiet', model: 'gpt-x', retries: 0 }],
      a: [{ provider: 'ant', model: 'claude-x', retries: 0 }],
      ab: [{ provider: 'antb', model: 'claude-x', retries: 0 }],
      al: [{ provider: 'antl', model: 'claude-x', retries: 0 }],
      ao: [{ provider: 'ant', model: 'claude-x', retries: 0 }, { provider: 'oai', model: 'gpt-x', retries: 0 }],
      cooling: [{ provider: 'oai', model: 'gpt-cool', retries: 0 }, { provider: 'ant', model: 'claude-x', retries: 0 }],
    },
  })
})
afterAll(async () => {
  await w.stop(0)
  upstream.stop(true)
})
beforeEach(() => {
  received.length = 0
  receivedHeaders.length = 0
})

const openai = () => new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'x', defaultHeaders: { 'x-agent-name': 'ezra' }, maxRetries: 0 })
const anthropic = () => new Anthropic({ baseURL: w.url, apiKey: 'x', defaultHeaders: { 'x-agent-name': 'ezra' }, maxRetries: 0 })
const ask = [{ role: 'user' as const, content: 'hi' }]

function sse(frames: string[]): Response {
  return new Response(frames.join(''), { headers: { 'content-type': 'text/event-stream' } })
}
const oa = (json: unknown) => `data: ${JSON.stringify(json)}\n\n`
const an = (json: { type: string }) => `event: ${json.type}\ndata: ${JSON.stringify(json)}\n\n`
const chunk = { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-x' }
const messageStart = (usage: Record<string, number>) =>
  an({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null, usage } } as { type: string })

function lastRequestRow() {
  const meta = readMeta(w.dbPath)
  const last = meta.at(-1)!.request_id
  const ids = new Set(meta.filter((m) => m.request_id === last).map((m) => m.log_id))
  return readRows(w.dbPath).filter((r) => ids.has(r.id)).at(-1)!
}

describe('an Anthropic provider, an OpenAI client', () => {
  test('what the translation would have to leave out (several choices, logprobs, audio in or out, a file by id, legacy functions): the step is skipped without a call, a fallback row says why, the next step takes it', async () => {
    const audio = { role: 'user', content: [{ type: 'text', text: 'transcribe' }, { type: 'input_audio', input_audio: { data: 'UklGRg==', format: 'wav' } }] }
    const cases: [Record<string, unknown>, string][] = [
      [{ n: 2 }, 'n: 2 (Anthropic answers one choice)'],
      [{ logprobs: true, top_logprobs: 3 }, 'logprobs (Anthropic gives none)'],
      [{ modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'audio output (Anthropic answers text)'],
      [{ messages: [audio] }, 'input_audio content (messages[0].content[1])'],
      [{ messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-abc' } }, { type: 'text', text: 'sum up' }] }] }, 'a file given by its id or without a data URL (Anthropic takes the file itself, as data:…;base64,…) (messages[0].content[0])'],
      [{ messages: [{ role: 'user', content: [{ type: 'file', file: { filename: 'a.docx', file_data: 'data:application/vnd.openxmlformats-officedocument.wordprocessingml.document;base64,UEsDBA==' } }] }] }, 'a file of type application/vnd.openxmlformats-officedocument.wordprocessingml.document (Anthropic reads PDF, text and images) (messages[0].content[0])'],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/svg+xml;utf8,<svg/>' } }] }] }, 'an image of type not base64 (Anthropic reads JPEG, PNG, GIF and WebP) (messages[0].content[0])'],
      [{ tools: [{ type: 'custom', custom: { name: 'grep' } }] }, 'a custom tool (tools[0]: Anthropic takes function tools)'],
      [{ messages: [...ask, { role: 'assistant', content: null, tool_calls: [{ id: 'call_c1', type: 'custom', custom: { name: 'grep', input: 'foo' } }] }, { role: 'tool', tool_call_id: 'call_c1', content: 'foo.txt:1' }] }, 'a custom tool call (messages[1].tool_calls[0])'],
      [{ messages: [...ask, { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '{}' } }, { role: 'function', name: 'get_weather', content: 'sunny' }] }, 'a legacy function_call (messages[1])'],
      [{ functions: [{ name: 'get_weather', parameters: { type: 'object', properties: {} } }], function_call: 'auto' }, 'the legacy functions (send tools)'],
      [{ messages: [...ask, { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', content: 'x' }] }, 'a tool message without its tool_call_id (messages[2])'],
    ]
    handler = () => Response.json({ id: 'chatcmpl-s', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const post = (body: Record<string, unknown>) =>
      fetch(`${w.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' }, body: JSON.stringify({ messages: ask, ...body }) })
    for (const [fields, why] of cases) {
      received.length = 0
      // No step can take it: the client's error (as OpenAI answers such a request), not a failing chain.
      const alone = await post({ model: 'a', ...fields })
      expect(alone.status).toBe(400)
      expect(((await alone.json()) as { error: { type: string; message: string } }).error).toMatchObject({
        type: 'invalid_request',
        message: `no step of chain "a" can take this request: ant/claude-x: skipped, an anthropic provider cannot take ${why}`,
      })
      expect(received).toHaveLength(0)
      expect(lastRequestRow()).toMatchObject({ provider: 'ant', status: 'fallback', error_message: `skipped ant/claude-x, an anthropic provider cannot take ${why}; no further step` })

      const served = await post({ model: 'ao', ...fields })
      expect(served.status).toBe(200)
      expect(received.map((body) => body.model)).toEqual(['gpt-x'])
      const rows = readRows(w.dbPath).slice(-2)
      expect(rows.map((r) => [r.provider, r.status, r.error_message])).toEqual([
        ['oai', 'fallback', `fallback from ant/claude-x: skipped, an anthropic provider cannot take ${why}`],
        ['oai', 'success', null],
      ])
    }
  })

  test('a streamed usage chunk counts cache writes and reads as prompt tokens, as the answer without streaming and the row do', async () => {
    handler = () =>
      sse([
        messageStart({ input_tokens: 10, cache_creation_input_tokens: 50, cache_read_input_tokens: 1000, output_tokens: 1 }),
        an({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } as { type: string }),
        an({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hello' } } as { type: string }),
        an({ type: 'content_block_stop', index: 0 } as { type: string }),
        an({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } } as { type: string }),
        an({ type: 'message_stop' }),
      ])
    const stream = await openai().chat.completions.create({ model: 'a', messages: ask, stream: true, stream_options: { include_usage: true } })
    let usage: OpenAI.CompletionUsage | undefined
    for await (const part of stream) usage = part.usage ?? usage
    expect(usage).toMatchObject({ prompt_tokens: 1060, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 1000 } })
    expect(lastRequestRow()).toMatchObject({ status: 'success', tokens_in: 1060, tokens_out: 5 })
  })

  test('an upstream that reports no usage: the client is told none (the row holds NULL), not 0, streamed or not', async () => {
    handler = (body) =>
      body.stream
        ? sse([
            an({ type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, stop_sequence: null } } as { type: string }),
            an({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } } as { type: string }),
            an({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'hello' } } as { type: string }),
            an({ type: 'content_block_stop', index: 0 } as { type: string }),
            an({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null } } as { type: string }),
            an({ type: 'message_stop' }),
          ])
        : Response.json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'hello' }], stop_reason: 'end_turn', stop_sequence: null })
    const whole = await openai().chat.completions.create({ model: 'a', messages: ask })
    expect(whole.choices[0]!.message.content).toBe('hello')
    expect(whole.usage).toBeUndefined()
    expect(lastRequestRow()).toMatchObject({ status: 'success', tokens_in: null, tokens_out: null })

    const parts: OpenAI.ChatCompletionChunk[] = []
    for await (const part of await openai().chat.completions.create({ model: 'a', messages: ask, stream: true, stream_options: { include_usage: true } })) parts.push(part)
    expect(parts.map((p) => p.choices[0]?.delta.content ?? '').join('')).toBe('hello')
    expect(parts.filter((p) => p.usage)).toEqual([])
    expect(lastRequestRow()).toMatchObject({ status: 'success', tokens_in: null, tokens_out: null })

    // An Anthropic client of the same stream: its SDK reads usage in message_start and message_delta unguarded.
    const message = await anthropic().messages.stream({ model: 'a', max_tokens: 10, messages: ask }).finalMessage()
    expect(message.content.map((b) => (b.type === 'text' ? b.text : b.type))).toEqual(['hello'])
    expect(message.usage).toMatchObject({ input_tokens: 0, output_tokens: 0 })
  })

  test("extended thinking reaches the OpenAI SDK as reasoning_content, streamed or not", async () => {
    handler = (body) =>
      body.stream
        ? sse([
            messageStart({ input_tokens: 10, output_tokens: 1 }),
            an({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } } as { type: string }),
            an({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Two and two.' } } as { type: string }),
            an({ type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } } as { type: string }),
            an({ type: 'content_block_stop', index: 0 } as { type: string }),
            an({ type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } } as { type: string }),
            an({ type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: '4' } } as { type: string }),
            an({ type: 'content_block_stop', index: 1 } as { type: string }),
            an({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 9 } } as { type: string }),
            an({ type: 'message_stop' }),
          ])
        : Response.json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'thinking', thinking: 'Two and two.', signature: 'sig' }, { type: 'text', text: '4' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 10, output_tokens: 9 } })
    const whole = await openai().chat.completions.create({ model: 'a', messages: ask })
    expect(whole.choices[0]!.message).toMatchObject({ content: '4', reasoning_content: 'Two and two.' })
    const deltas: Record<string, unknown>[] = []
    for await (const part of await openai().chat.completions.create({ model: 'a', messages: ask, stream: true })) if (part.choices[0]) deltas.push(part.choices[0].delta as Record<string, unknown>)
    expect(deltas.map((d) => d.reasoning_content ?? '').join('')).toBe('Two and two.')
    expect(deltas.map((d) => d.content ?? '').join('')).toBe('4')
  })

  test('cache reads keep their own count across the translation, both ways, streamed or not', async () => {
    handler = () => Response.json({ id: 'msg_6', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 10, cache_read_input_tokens: 900, output_tokens: 2 } })
    const done = await openai().chat.completions.create({ model: 'a', messages: ask })
    expect(done.usage).toMatchObject({ prompt_tokens: 910, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 900 } })

    const openaiUsage = { prompt_tokens: 910, completion_tokens: 2, total_tokens: 912, prompt_tokens_details: { cached_tokens: 900 } }
    handler = () => Response.json({ id: 'chatcmpl-7', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: openaiUsage })
    const message = await anthropic().messages.create({ model: 'o', max_tokens: 10, messages: ask })
    expect(message.usage).toMatchObject({ input_tokens: 10, cache_read_input_tokens: 900, output_tokens: 2 })

    handler = () => sse([oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] }), oa({ ...chunk, choices: [], usage: openaiUsage }), 'data: [DONE]\n\n'])
    const streamed = await anthropic().messages.stream({ model: 'o', max_tokens: 10, messages: ask }).finalMessage()
    expect(streamed.usage).toMatchObject({ input_tokens: 10, cache_read_input_tokens: 900, output_tokens: 2 })
    // The row counts every input token, cached or not.
    expect(lastRequestRow()).toMatchObject({ status: 'success', tokens_in: 910, tokens_out: 2 })
  })

  test('a tool called without input streams its arguments as "{}", as OpenAI sends them, not ""', async () => {
    handler = () =>
      sse([
        messageStart({ input_tokens: 10, output_tokens: 1 }),
        an({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_B', name: 'get_time', input: {} } } as { type: string }),
        an({ type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '' } } as { type: string }),
        an({ type: 'content_block_stop', index: 0 } as { type: string }),
        an({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 30 } } as { type: string }),
        an({ type: 'message_stop' }),
      ])
    const done = await openai().chat.completions.stream({ model: 'a', messages: ask }).finalChatCompletion()
    expect(done.choices[0]!.message.tool_calls![0]).toMatchObject({ type: 'function', function: { name: 'get_time', arguments: '{}' } })
  })

  test('a step that cannot take the request is not one that could be called: the others, all cooling down, are tried anyway', async () => {
    const ok = Response.json({ id: 'chatcmpl-c', object: 'chat.completion', created: 1, model: 'gpt-cool', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const claude = () => Response.json({ id: 'msg_c', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } })
    // gpt-cool fails three times (the Anthropic step serves): it cools down.
    handler = (body) => (body.model === 'gpt-cool' ? new Response('down', { status: 503 }) : claude())
    for (let i = 0; i < 3; i++) expect((await openai().chat.completions.create({ model: 'cooling', messages: ask })).choices[0]!.message.content).toBe('ok')
    // Back up; a request only it can take (two choices) goes to it though it cools down.
    handler = (body) => (body.model === 'gpt-cool' ? ok.clone() : claude())
    received.length = 0
    const res = await openai().chat.completions.create({ model: 'cooling', messages: ask, n: 2 })
    expect(res.model).toBe('gpt-cool')
    expect(received.map((body) => body.model)).toEqual(['gpt-cool'])
  })

  test('a tool call whose start holds its whole input and no input_json_delta follows (a proxy\'s way) streams that input as its arguments, as the Anthropic SDK reads it', async () => {
    handler = () =>
      sse([
        messageStart({ input_tokens: 10, output_tokens: 1 }),
        an({ type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'toolu_W', name: 'get_weather', input: { city: 'Whole' } } } as { type: string }),
        an({ type: 'content_block_stop', index: 0 } as { type: string }),
        an({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_D', name: 'get_weather', input: { city: 'Start' } } } as { type: string }),
        an({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":"Delta"}' } } as { type: string }),
        an({ type: 'content_block_stop', index: 1 } as { type: string }),
        an({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 30 } } as { type: string }),
        an({ type: 'message_stop' }),
      ])
    const done = await openai().chat.completions.stream({ model: 'a', messages: ask }).finalChatCompletion()
    expect(done.choices[0]!.message.tool_calls!.map((c) => c.type === 'function' && [c.id, c.function.arguments])).toEqual([
      ['toolu_W', '{"city":"Whole"}'],
      // Deltas, when they come, are the input (the SDK replaces the start's with them).
      ['toolu_D', '{"city":"Delta"}'],
    ])
  })

  test('tool ids of another provider (Kimi\'s functions.get_weather:0) reach Anthropic in a form it accepts, the same in the call and its result', async () => {
    handler = () => Response.json({ id: 'msg_2', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'sunny' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    await openai().chat.completions.create({
      model: 'a',
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'functions.get_weather:0', content: 'sunny' },
      ],
    })
    const [assistant, result] = [received[0]!.messages[1].content[0], received[0]!.messages[2].content[0]]
    expect(assistant.id).toMatch(/^[a-zA-Z0-9_-]+$/)
    expect(result.tool_use_id).toBe(assistant.id)
  })

  test("an Anthropic client's history with another provider's tool ids (a turn Kimi served through witness) reaches Anthropic in a form it accepts", async () => {
    handler = () => Response.json({ id: 'msg_3', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'sunny' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    await anthropic().messages.create({
      model: 'a',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'functions.get_weather:0', name: 'get_weather', input: { city: 'Paris' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'functions.get_weather:0', content: 'sunny' }, { type: 'text', text: 'and tomorrow?' }] },
      ],
    })
    const [assistant, result] = [received[0]!.messages[1].content[0], received[0]!.messages[2].content[0]]
    expect(assistant.id).toMatch(/^[a-zA-Z0-9_-]+$/)
    expect(result.tool_use_id).toBe(assistant.id)
    expect(received[0]!.messages[2].content[1]).toEqual({ type: 'text', text: 'and tomorrow?' })
  })

  test("an Anthropic client's betas (anthropic-beta) reach Anthropic, joined to those the provider's config sets for every call", async () => {
    handler = () => Response.json({ id: 'msg_5', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    await anthropic().beta.messages.create({ model: 'a', max_tokens: 100, messages: ask, betas: ['context-1m-2025-08-07'] })
    expect(receivedHeaders[0]!.get('anthropic-beta')).toBe('context-1m-2025-08-07')
    await anthropic().beta.messages.create({ model: 'ab', max_tokens: 100, messages: ask, betas: ['context-1m-2025-08-07'] })
    expect(receivedHeaders[1]!.get('anthropic-beta')).toBe('fleet-beta-1,context-1m-2025-08-07')
    // Without betas from the client, the config's stand as they are.
    await anthropic().messages.create({ model: 'ab', max_tokens: 100, messages: ask })
    expect(receivedHeaders[2]!.get('anthropic-beta')).toBe('fleet-beta-1')
  })

  test('request fields the Messages API does not know are not sent to it (it refuses them); those it shares are', async () => {
    handler = () => Response.json({ id: 'msg_4', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const res = await fetch(`${w.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
      body: JSON.stringify({
        model: 'a',
        messages: ask,
        top_p: 0.5,
        user: 'ezra-7',
        metadata: { team: 'ops' },
        prompt_cache_key: 'k1',
        safety_identifier: 's1',
        verbosity: 'low',
        audio: { voice: 'alloy', format: 'mp3' },
        service_tier: 'flex',
      }),
    })
    expect(res.status).toBe(200)
    const sent = received[0]!
    expect(Object.keys(sent).sort()).toEqual(['max_tokens', 'messages', 'metadata', 'model', 'top_p'])
    expect(sent.top_p).toBe(0.5)
    expect(sent.metadata).toEqual({ user_id: 'ezra-7' })
  })
  test('wrong types in the fields witness reads or translates are a 400 naming each path, and nothing is sent', async () => {
    const post = (path: string, body: Record<string, unknown>) =>
      fetch(`${w.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' }, body: JSON.stringify(body) })
    const cases: [Record<string, unknown>, string[]][] = [
      [{ max_tokens: 'many', temperature: 'hot', stop: 5 }, ['max_tokens', 'temperature', 'stop']],
      [{ n: '2', logprobs: 'true', top_logprobs: -1 }, ['n', 'logprobs', 'top_logprobs']],
      [{ messages: [{ role: 'user', content: 5 }] }, ['messages[0].content']],
      [{ messages: [{ role: 5, content: 'hi' }] }, ['messages[0].role']],
      [{ messages: [{ role: 'user', content: [{ text: 'hi' }] }] }, ['messages[0].content[0].type']],
      [{ messages: [{ role: 'assistant', content: null, tool_calls: 'x' }] }, ['messages[0].tool_calls']],
      [{ tools: [{ type: 'function', function: { name: 5 } }] }, ['tools[0].function.name']],
    ]
    for (const [fields, paths] of cases) {
      for (const [path, extra] of [['/v1/chat/completions', { model: 'a' }], ['/v1/infer', { chain: 'a' }]] as const) {
        const res = await post(path, { messages: ask, ...extra, ...fields })
        expect(res.status).toBe(400)
        const issues = ((await res.json()) as { error: { issues: { path: string }[] } }).error.issues
        expect(issues.map((issue) => issue.path)).toEqual(paths)
      }
    }
    expect(received).toHaveLength(0)
    // What the SDKs send (nulls for unset fields, content parts, a tool loop) still goes.
    handler = () => Response.json({ id: 'msg_9', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const loop = [
      { role: 'user', content: [{ type: 'text', text: 'weather?' }] },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ]
    const res = await post('/v1/chat/completions', { model: 'a', messages: loop, max_tokens: null, temperature: null, stop: null, stream: null, tools: [{ type: 'function', function: { name: 'get_weather' } }] })
    expect(res.status).toBe(200)
    // A custom (freeform) tool's call carries `custom`, not `function`; a role other upstreams take
    // (Llama's `ipython`, at a vLLM) goes on, and toward Anthropic as the user's; a null tool_call_id.
    handler = () => Response.json({ id: 'chatcmpl-31', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }] })
    const custom = [
      { role: 'user', content: 'run it' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_2', type: 'custom', custom: { name: 'shell', input: 'ls' } }] },
      { role: 'tool', tool_call_id: 'call_2', content: 'a.txt' },
      { role: 'ipython', content: 'output: 42', tool_call_id: null },
    ]
    expect((await post('/v1/chat/completions', { model: 'o', messages: custom })).status).toBe(200)
    expect(received.at(-1)!.messages).toEqual(custom)
    handler = () => Response.json({ id: 'msg_12', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    expect((await post('/v1/chat/completions', { model: 'a', messages: [{ role: 'user', content: 'hi' }, { role: 'ipython', content: 'output: 42' }] })).status).toBe(200)
    expect(received.at(-1)!.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'text', text: 'output: 42' }] }])
  })

  test('a request without max_tokens gets the provider\'s default_max_tokens (4096 unless set): the Messages API requires one', async () => {
    handler = () => Response.json({ id: 'msg_10', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    await openai().chat.completions.create({ model: 'a', messages: ask })
    await openai().chat.completions.create({ model: 'al', messages: ask })
    await openai().chat.completions.create({ model: 'al', messages: ask, max_completion_tokens: 100 })
    expect(received.map((body) => body.max_tokens)).toEqual([4096, 32000, 100])
  })

  test("an assistant turn that refused (OpenAI's refusal part) keeps its text toward Anthropic, between the user turns it separates", async () => {
    handler = () => Response.json({ id: 'msg_11', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const messages = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] },
      { role: 'user', content: 'why?' },
    ]
    await openai().chat.completions.create({ model: 'a', messages: messages as OpenAI.ChatCompletionMessageParam[] })
    expect(received[0]!.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'hi' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'I cannot.' }] },
      { role: 'user', content: [{ type: 'text', text: 'why?' }] },
    ])
  })

  test('stop sequences of whitespace alone (a completion-style "\\n"), which Anthropic refuses, are left out; the others go', async () => {
    handler = () => Response.json({ id: 'msg_6', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    await openai().chat.completions.create({ model: 'a', messages: ask, stop: ['\n', 'END', ' '] })
    expect(received[0]!.stop_sequences).toEqual(['END'])
    await openai().chat.completions.create({ model: 'a', messages: ask, stop: '\n' })
    expect(received[1]!.stop_sequences).toBeUndefined()
  })

  test("thinking is left out of a tool loop's next turn: Anthropic wants that turn to begin with a signed thinking block, which an OpenAI client never has", async () => {
    handler = () => Response.json({ id: 'msg_7', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'sunny' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const thinking = { type: 'enabled', budget_tokens: 1024 }
    const send = (messages: unknown[]) =>
      fetch(`${w.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' }, body: JSON.stringify({ model: 'a', messages, thinking }) })
    expect((await send(ask)).status).toBe(200)
    expect(received[0]!.thinking).toEqual(thinking)
    const loop = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ]
    expect((await send(loop)).status).toBe(200)
    expect(received[1]!.thinking).toBeUndefined()
  })

  test('thinking turned off by the client stays off in a tool loop (dropped, it would fall back to a model that thinks by default)', async () => {
    handler = () => Response.json({ id: 'msg_9', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'sunny' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const loop = [
      { role: 'user', content: 'weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ]
    const res = await fetch(`${w.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' }, body: JSON.stringify({ model: 'a', messages: loop, thinking: { type: 'disabled' } }) })
    expect(res.status).toBe(200)
    expect(received[0]!.thinking).toEqual({ type: 'disabled' })
  })

  test("an Anthropic client's tool-loop turn that began with another provider's reasoning (left out for Anthropic) goes without thinking, which Anthropic would refuse", async () => {
    handler = (body) => {
      const last = body.messages.findLast((m: { role: string }) => m.role === 'assistant')
      if (body.thinking && body.thinking.type !== 'disabled' && last.content[0].type !== 'thinking') {
        return Response.json({ type: 'error', error: { type: 'invalid_request_error', message: 'a final `assistant` message must start with a thinking block' } }, { status: 400 })
      }
      return Response.json({ id: 'msg_10', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Sunny.' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 9, output_tokens: 2 } })
    }
    const history = [
      ...ask,
      { role: 'assistant', content: [{ type: 'thinking', thinking: 'call it', signature: 'witness.reasoning.openrouter' }, { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_1', content: 'sunny' }] },
    ]
    const answer = await anthropic().messages.create({ model: 'a', max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: history as never })
    expect(answer.content).toMatchObject([{ type: 'text', text: 'Sunny.' }])
    expect(received[0]!.thinking).toBeUndefined()
    // Its own signed thinking kept, the client's thinking setting goes as it is.
    const signed = [history[0], { ...history[1]!, content: [{ type: 'thinking', thinking: 'call it', signature: 'EqQBCgIYAhIM' }, ...(history[1]!.content as unknown[]).slice(1)] }, history[2]]
    await anthropic().messages.create({ model: 'a', max_tokens: 2000, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: signed as never })
    expect(received[1]!.thinking).toEqual({ type: 'enabled', budget_tokens: 1024 })
  })

  test('"stream": null (the SDKs type it "| null") is no stream, not a 400', async () => {
    handler = () => Response.json({ id: 'msg_8', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const res = await fetch(`${w.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' }, body: JSON.stringify({ model: 'a', messages: ask, stream: null, user: null }) })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('ok')
  })

  test('structured outputs: response_format json_schema reaches Anthropic as output_config.format, and its JSON answer is the content', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' }, celsius: { type: 'number' } }, required: ['city', 'celsius'], additionalProperties: false }
    const answer = '{"city":"Paris","celsius":14}'
    handler = () => Response.json({ id: 'msg_5', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: answer }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 9 } })
    const completion = await openai().chat.completions.create({
      model: 'a',
      messages: ask,
      response_format: { type: 'json_schema', json_schema: { name: 'weather', schema, strict: true } },
    })
    expect(received[0]!.output_config).toEqual({ format: { type: 'json_schema', schema } })
    expect(received[0]!.response_format).toBeUndefined()
    expect(JSON.parse(completion.choices[0]!.message.content!)).toEqual({ city: 'Paris', celsius: 14 })
    // json_object has no Anthropic counterpart (the prompt asks for JSON, as OpenAI requires): nothing is sent for it.
    await openai().chat.completions.create({ model: 'a', messages: [{ role: 'user', content: 'Answer in JSON.' }], response_format: { type: 'json_object' } })
    expect(received[1]!.output_config).toBeUndefined()
  })
})

describe('compressed bodies', () => {
  test('witness asks for bodies as sent; one compressed anyway is held to the size ceiling as it expands, not as its length says', async () => {
    // 80 MB of zeros in about 80 KB: past the 64 MB ceiling once expanded.
    const bomb = Bun.gzipSync(new Uint8Array(80 * 1024 * 1024))
    handler = () => new Response(bomb, { headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } })
    const res = await w.post('/v1/chat/completions', { model: 'o', messages: ask }, { 'x-agent-name': 'ezra' })
    expect(res.status).toBe(502)
    expect(receivedHeaders[0]!.get('accept-encoding')).toBe('identity')
    expect(lastRequestRow()).toMatchObject({ status: 'error', error_message: 'malformed response: larger than 64 MB' })
  })
})

describe('an OpenAI-compatible provider that refuses stream_options (stream_usage: false)', () => {
  test('a stream does not ask it for usage; what the client itself sent still goes', async () => {
    handler = () => sse([oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }), 'data: [DONE]\n\n'])
    let content = ''
    for await (const part of await openai().chat.completions.create({ model: 'strict', messages: ask, stream: true })) content += part.choices[0]?.delta.content ?? ''
    expect(content).toBe('hi')
    expect(received[0]!.stream).toBe(true)
    expect(received[0]!).not.toHaveProperty('stream_options')
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'success', tokens_in: null })
    for await (const _ of await openai().chat.completions.create({ model: 'strict', messages: ask, stream: true, stream_options: { include_usage: true } })) void _
    expect(received[1]!.stream_options).toEqual({ include_usage: true })
    // The default still asks for it.
    for await (const _ of await openai().chat.completions.create({ model: 'o', messages: ask, stream: true })) void _
    expect(received[2]!.stream_options).toEqual({ include_usage: true })
  })
})

describe('an OpenAI-compatible provider, an Anthropic client', () => {
  test('request fields an OpenAI-compatible API does not know are not sent to it; those it shares are', async () => {
    handler = () => Response.json({ id: 'chatcmpl-9', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const res = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({
        model: 'o',
        max_tokens: 100,
        messages: ask,
        temperature: 0.2,
        top_k: 5,
        cache_control: { type: 'ephemeral' },
        output_config: { effort: 'low' },
        inference_geo: 'us',
        thinking: { type: 'enabled', budget_tokens: 1024 },
      }),
    })
    expect(res.status).toBe(200)
    const sent = received[0]!
    expect(Object.keys(sent).sort()).toEqual(['max_tokens', 'messages', 'model', 'temperature'])
    expect(sent.temperature).toBe(0.2)
  })

  test('wrong types in the sampling fields the translation reads are a 400 naming each path, and nothing is sent', async () => {
    const res = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'o', max_tokens: 100, messages: ask, temperature: 'hot', top_p: '0.5', top_k: 1.5, stop_sequences: 'END' }),
    })
    expect(res.status).toBe(400)
    const issues = ((await res.json()) as { error: { issues: { path: string }[] } }).error.issues
    expect(issues.map((issue) => issue.path)).toEqual(['temperature', 'top_p', 'top_k', 'stop_sequences'])
    expect(received).toHaveLength(0)
    // A null is unsaid: not sent on.
    handler = () => Response.json({ id: 'chatcmpl-n', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const nulls = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'o', max_tokens: 100, messages: ask, temperature: null, top_p: null, top_k: null, stop_sequences: null }),
    })
    expect(nulls.status).toBe(200)
    expect(Object.keys(received[0]!).sort()).toEqual(['max_tokens', 'messages', 'model'])
  })

  test('structured outputs: output_config.format (or the beta output_format) reaches it as a strict response_format json_schema', async () => {
    const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false }
    handler = () => Response.json({ id: 'chatcmpl-10', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: '{"city":"Paris"}' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } })
    const send = (extra: Record<string, unknown>) =>
      fetch(`${w.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'o', max_tokens: 100, messages: ask, ...extra }),
      })
    const res = await send({ output_config: { effort: 'low', format: { type: 'json_schema', schema } } })
    expect(res.status).toBe(200)
    expect(((await res.json()) as { content: unknown[] }).content).toEqual([{ type: 'text', text: '{"city":"Paris"}' }])
    expect(received[0]!.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'output', schema, strict: true } })
    expect((await send({ output_format: { type: 'json_schema', schema } })).status).toBe(200)
    expect(received[1]!.response_format).toEqual(received[0]!.response_format)
  })

  test('parallel tool calls sent without an index (Gemini\'s OpenAI endpoint) stay two tool_use blocks', async () => {
    handler = () =>
      sse([
        oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ id: 'call_A', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ id: 'call_B', type: 'function', function: { name: 'get_time', arguments: '{"tz":' } }] }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ function: { arguments: '"CET"}' } }] }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }),
        'data: [DONE]\n\n',
      ])
    const message = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    expect(message.content as unknown[]).toEqual([
      { type: 'tool_use', id: 'call_A', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_B', name: 'get_time', input: { tz: 'CET' } },
    ])
  })

  test('parallel calls sent whole, one a delta, at index 0 with their own ids or without index and id (Gemini), stay apart', async () => {
    const call = (extra: Record<string, unknown>, name: string, args: string) => oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ ...extra, type: 'function', function: { name, arguments: args } }] }, finish_reason: null }] })
    for (const [a, b] of [
      [{ index: 0, id: 'call_A' }, { index: 0, id: 'call_B' }],
      [{ id: '' }, { id: '' }],
    ]) {
      handler = () => sse([call(a!, 'get_weather', '{"city":"Paris"}'), call(b!, 'get_time', '{"tz":"UTC"}'), oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), 'data: [DONE]\n\n'])
      const message = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
      expect(message.content.map((block) => (block.type === 'tool_use' ? [block.name, block.input] : block.type))).toEqual([
        ['get_weather', { city: 'Paris' }],
        ['get_time', { tz: 'UTC' }],
      ])
      for (const block of message.content) if (block.type === 'tool_use') expect(block.id).toMatch(/^[a-zA-Z0-9_-]+$/)
      // Gemini says "stop" for an answer that calls tools: the client must still run them.
      expect(message.stop_reason).toBe('tool_use')
    }
  })

  test('an answer with tool calls and no finish_reason stops for tool_use, streamed or not; one without calls for end_turn (a Messages answer always says why it stopped)', async () => {
    const calls = [{ id: 'call_N', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }]
    handler = () => Response.json({ id: 'chatcmpl-21', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: calls } }] })
    expect((await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })).stop_reason).toBe('tool_use')
    handler = () => Response.json({ id: 'chatcmpl-22', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: null }] })
    expect((await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })).stop_reason).toBe('end_turn')
    handler = () => sse([oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, ...calls[0] }] }, finish_reason: null }] }), 'data: [DONE]\n\n'])
    const streamed = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    expect([streamed.stop_reason, streamed.content[0]!.type]).toEqual(['tool_use', 'tool_use'])
  })

  test("text or reasoning sent while a call's arguments stream waits for the call to be whole: every delta goes to the block that is open", async () => {
    const call = (args: string, head = false) =>
      oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, ...(head ? { id: 'call_1', type: 'function' } : {}), function: { ...(head ? { name: 'get_weather' } : {}), arguments: args } }] }, finish_reason: null }] })
    const said = (delta: Record<string, unknown>) => oa({ ...chunk, choices: [{ index: 0, delta, finish_reason: null }] })
    handler = () => sse([call('{"ci', true), said({ content: 'Let me check.' }), said({ reasoning_content: 'Paris, then.' }), call('ty":"Paris"}'), oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }), 'data: [DONE]\n\n'])
    const res = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
      body: JSON.stringify({ model: 'o', max_tokens: 100, stream: true, messages: ask }),
    })
    const events = (await res.text()).split('\n\n').flatMap((frame) => {
      const data = frame.split('\n').find((line) => line.startsWith('data: '))
      return data ? [JSON.parse(data.slice(6)) as { type: string; index?: number; delta?: Record<string, string>; content_block?: { type: string } }] : []
    })
    // A block is started, given deltas and stopped, one at a time, in index order.
    let open: number | null = null
    let next = 0
    const blocks: string[] = []
    for (const event of events) {
      if (event.type === 'content_block_start') {
        expect([open, event.index]).toEqual([null, next++])
        open = event.index!
        blocks.push(event.content_block!.type)
      } else if (event.type === 'content_block_delta') expect(event.index).toBe(open!)
      else if (event.type === 'content_block_stop') {
        expect(event.index).toBe(open!)
        open = null
      }
    }
    expect(blocks).toEqual(['tool_use', 'text', 'thinking'])
    const args = events.filter((e) => e.type === 'content_block_delta' && e.index === 0).map((e) => e.delta!.partial_json).join('')
    expect(JSON.parse(args)).toEqual({ city: 'Paris' })
    // A stream cut while text was held: the text is sent, then the error.
    handler = () => sse([call('{"ci', true), said({ content: 'Let me check.' })])
    const cut = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
      body: JSON.stringify({ model: 'o', max_tokens: 100, stream: true, messages: ask }),
    })
    const frames = (await cut.text()).split('\n\n').filter((frame) => frame.startsWith('event: '))
    expect(frames.map((frame) => frame.slice(7, frame.indexOf('\n')))).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'content_block_start', 'content_block_delta', 'error'])
    expect(frames[5]).toContain('"text":"Let me check."')
  })

  test('an answer with tool calls and finish_reason "stop" (Gemini; OpenAI when tool_choice names a function) stops for tool_use, streamed or not', async () => {
    const calls = [{ id: 'call_W', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }]
    handler = () => Response.json({ id: 'chatcmpl-11', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: calls }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 } })
    const message = await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
    expect([message.stop_reason, message.content[0]!.type]).toEqual(['tool_use', 'tool_use'])
    handler = () => sse([oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', tool_calls: [{ index: 0, ...calls[0] }] }, finish_reason: null }] }), oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), 'data: [DONE]\n\n'])
    const streamed = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    expect(streamed.stop_reason).toBe('tool_use')
  })

  test("a refusal (OpenAI's own field, content null) is the answer's text, and its stop reason is refusal, streamed or not", async () => {
    handler = () => Response.json({ id: 'chatcmpl-12', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: null, refusal: "I can't help with that." }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 } })
    const message = await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
    expect([message.stop_reason, message.content.map((block) => block.type === 'text' && block.text)]).toEqual(['refusal', ["I can't help with that."]])
    handler = () =>
      sse([
        oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: null, refusal: "I can't" }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: { refusal: ' help with that.' }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
        'data: [DONE]\n\n',
      ])
    const streamed = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    expect([streamed.stop_reason, streamed.content.map((block) => block.type === 'text' && block.text)]).toEqual(['refusal', ["I can't help with that."]])
  })

  test("a failed tool's result says so in its text; an image a tool returned follows the tool messages; a text document goes as its text", async () => {
    handler = () => Response.json({ id: 'chatcmpl-14', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const png = 'iVBORw0KGgoAAAANSUhEUg'
    await anthropic().messages.create({
      model: 'o',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'look' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'run', input: {} }, { type: 'tool_use', id: 'toolu_2', name: 'screenshot', input: {} }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', is_error: true, content: 'exit status 2' },
            { type: 'tool_result', tool_use_id: 'toolu_2', content: [{ type: 'text', text: 'partial' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: png } }] },
            { type: 'document', title: 'notes.txt', source: { type: 'text', media_type: 'text/plain', data: 'the contract says 42' } },
          ],
        },
      ],
    })
    expect(received[0]!.messages.slice(2)).toEqual([
      { role: 'tool', tool_call_id: 'toolu_1', content: 'Error: exit status 2' },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'partial' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }, { type: 'text', text: 'notes.txt\n\nthe contract says 42' }] },
    ])
  })

  test('a PDF crosses both ways: an Anthropic document becomes an OpenAI file part, and a file part (a PDF, a text file) a document', async () => {
    const pdf = Buffer.from('%PDF-1.4 fake').toString('base64')
    handler = () => Response.json({ id: 'chatcmpl-15', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    await anthropic().messages.create({
      model: 'o',
      max_tokens: 100,
      messages: [{ role: 'user', content: [{ type: 'document', title: 'contract.pdf', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }, { type: 'text', text: 'Summarise it.' }] }],
    })
    expect(received[0]!.messages).toEqual([
      { role: 'user', content: [{ type: 'file', file: { filename: 'contract.pdf', file_data: `data:application/pdf;base64,${pdf}` } }, { type: 'text', text: 'Summarise it.' }] },
    ])

    // A PDF a tool returned (Claude Code's Read) follows the tool message, as an image does; a document of content blocks goes as its text.
    await anthropic().messages.create({
      model: 'o',
      max_tokens: 100,
      messages: [
        { role: 'user', content: 'read it' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_9', name: 'Read', input: { file_path: 'contract.pdf' } }, { type: 'tool_use', id: 'toolu_10', name: 'Read', input: { file_path: 'notes.txt' } }] },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_9', content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: pdf } }] },
            { type: 'tool_result', tool_use_id: 'toolu_10', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'line one' } }] },
            { type: 'document', title: 'notes', source: { type: 'content', content: [{ type: 'text', text: 'first' }, { type: 'text', text: 'second' }] } },
          ],
        },
      ],
    })
    expect(received[1]!.messages.slice(2)).toEqual([
      { role: 'tool', tool_call_id: 'toolu_9', content: '' },
      { role: 'tool', tool_call_id: 'toolu_10', content: 'line one' },
      { role: 'user', content: [{ type: 'file', file: { filename: 'document.pdf', file_data: `data:application/pdf;base64,${pdf}` } }, { type: 'text', text: 'notes\n\nfirst\nsecond' }] },
    ])

    handler = () => Response.json({ id: 'msg_4', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'ok' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } })
    const notes = Buffer.from('the contract says 42 ✓').toString('base64')
    await openai().chat.completions.create({
      model: 'a',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'file', file: { filename: 'contract.pdf', file_data: `data:application/pdf;base64,${pdf}` } },
            { type: 'file', file: { filename: 'notes.txt', file_data: `data:Text/Plain;charset=utf-8;base64,${notes}` } },
            { type: 'file', file: { filename: 'shot.png', file_data: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'data:Image/JPEG;name=shot.jpg;base64,/9j/4AAQ' } },
            { type: 'text', text: 'Summarise them.' },
          ],
        },
      ],
    })
    expect(received[2]!.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'document', title: 'contract.pdf', source: { type: 'base64', media_type: 'application/pdf', data: pdf } },
          { type: 'document', title: 'notes.txt', source: { type: 'text', media_type: 'text/plain', data: 'the contract says 42 ✓' } },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } },
          { type: 'text', text: 'Summarise them.' },
        ],
      },
    ])
  })

  test("a document by URL or by a Files API id, and an image by id, go as file parts (the upstream takes or refuses them) rather than being dropped; Anthropic's own tools, which have no schema, are left out", async () => {
    handler = () => Response.json({ id: 'chatcmpl-23', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const res = await fetch(`${w.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
      body: JSON.stringify({
        model: 'o',
        max_tokens: 100,
        messages: [{
          role: 'user',
          content: [
            { type: 'document', title: 'report.pdf', source: { type: 'url', url: 'https://example.com/report.pdf' } },
            { type: 'document', source: { type: 'file', file_id: 'file_011' } },
            { type: 'image', source: { type: 'file', file_id: 'file_012' } },
            { type: 'text', text: 'Summarise them.' },
          ],
        }],
        tools: [
          { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
          { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } },
          { type: 'custom', name: 'get_time', input_schema: { type: 'object', properties: {} } },
        ],
      }),
    })
    expect(res.status).toBe(200)
    expect(received[0]!.messages[0].content).toEqual([
      { type: 'file', file: { filename: 'report.pdf', file_data: 'https://example.com/report.pdf' } },
      { type: 'file', file: { file_id: 'file_011' } },
      { type: 'file', file: { file_id: 'file_012' } },
      { type: 'text', text: 'Summarise them.' },
    ])
    expect(received[0]!.tools.map((tool: { function: { name: string } }) => tool.function.name)).toEqual(['get_weather', 'get_time'])
    // A choice goes only with tools to choose among, and not one naming a tool left out.
    const post = (tools: unknown[], choice: unknown) =>
      fetch(`${w.url}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-name': 'ezra' },
        body: JSON.stringify({ model: 'o', max_tokens: 100, messages: ask, tools, tool_choice: choice }),
      })
    const search = { type: 'web_search_20250305', name: 'web_search' }
    const weather = { name: 'get_weather', input_schema: { type: 'object', properties: {} } }
    expect((await post([search], { type: 'tool', name: 'web_search', disable_parallel_tool_use: true })).status).toBe(200)
    expect([received[1]!.tools, received[1]!.tool_choice, received[1]!.parallel_tool_calls]).toEqual([undefined, undefined, undefined])
    expect((await post([search, weather], { type: 'tool', name: 'web_search', disable_parallel_tool_use: true })).status).toBe(200)
    expect([received[2]!.tool_choice, received[2]!.parallel_tool_calls]).toEqual([undefined, false])
    expect((await post([search, weather], { type: 'tool', name: 'get_weather' })).status).toBe(200)
    expect(received[3]!.tool_choice).toEqual({ type: 'function', function: { name: 'get_weather' } })
  })

  test("a user turn's text blocks (Claude Code's <system-reminder>, then the prompt) reach it a line apart, not run together", async () => {
    handler = () => Response.json({ id: 'chatcmpl-13', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: [{ role: 'user', content: [{ type: 'text', text: '<system-reminder>be nice</system-reminder>' }, { type: 'text', text: 'List files' }] }] })
    expect(received[0]!.messages).toEqual([{ role: 'user', content: '<system-reminder>be nice</system-reminder>\nList files' }])
  })

  test("tool calls streamed in other providers' styles stay one call each: an id that changes mid-call (Poolside), the name in every delta (MiniMax), a last delta of whitespace or nothing", async () => {
    const calls = (...tc: Record<string, unknown>[]) => oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: tc }, finish_reason: null }] })
    const styles: string[][] = [
      [calls({ index: 0, id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '' } }), calls({ index: 0, id: 'call_2', function: { arguments: '{"path":' } }), calls({ index: 0, id: 'call_2', function: { arguments: '"a.txt"}' } })],
      [calls({ index: 0, id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '' } }), calls({ index: 0, id: 'call_1', function: { name: 'read_file', arguments: '{"path":' } }), calls({ index: 0, id: 'call_1', function: { name: 'read_file', arguments: '"a.txt"}' } })],
      [calls({ index: 0, id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '{"path":"a.txt"}' } }), calls({ index: 0, function: { name: 'read_file', arguments: '\n' } })],
      [calls({ index: 0, id: 'call_1', type: 'function', function: { name: 'read_file', arguments: '{"path":"a.txt"}' } }), calls({ index: 0, function: { name: 'rm_file', arguments: '' } })],
    ]
    for (const frames of styles) {
      handler = () => sse([...frames, oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }), 'data: [DONE]\n\n'])
      const message = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
      expect(message.content.map((b) => (b.type === 'tool_use' ? [b.id, b.name, b.input] : b.type))).toEqual([['call_1', 'read_file', { path: 'a.txt' }]])
    }
  })

  test('calls sent with empty ids, not streamed, get ids the client can answer, as streamed ones do', async () => {
    const call = (name: string, args: string) => ({ id: '', type: 'function', function: { name, arguments: args } })
    handler = () => Response.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [call('get_weather', '{"city":"Paris"}'), call('get_time', '{"tz":"UTC"}')] }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } })
    const message = await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
    const ids = message.content.flatMap((b) => (b.type === 'tool_use' ? [b.id] : []))
    expect(ids.map((id) => /^toolu_[a-zA-Z0-9_-]+$/.test(id))).toEqual([true, true])
    expect(new Set(ids).size).toBe(2)
  })

  test('content and a refusal in one answer: the text holds both and the stop reason is refusal, streamed or not', async () => {
    handler = () => Response.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message: { role: 'assistant', content: 'Partial.', refusal: ' I cannot continue.' }, finish_reason: 'stop' }] })
    const whole = await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
    handler = () => sse([oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: 'Partial.' }, finish_reason: null }] }), oa({ ...chunk, choices: [{ index: 0, delta: { refusal: ' I cannot continue.' }, finish_reason: null }] }), oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }), 'data: [DONE]\n\n'])
    const streamed = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    for (const message of [whole, streamed]) {
      expect([message.stop_reason, message.content.map((b) => b.type === 'text' && b.text)]).toEqual(['refusal', ['Partial. I cannot continue.']])
    }
  })

  test('usage sent inside the choice (Moonshot\'s Kimi, streaming) reaches the row and the client', async () => {
    handler = () =>
      sse([
        oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', content: 'hi' }, finish_reason: null }] }),
        oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop', usage: { prompt_tokens: 19, completion_tokens: 13, total_tokens: 32 } }] }),
        'data: [DONE]\n\n',
      ])
    const message = await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
    expect(message.usage).toMatchObject({ input_tokens: 19, output_tokens: 13 })
    expect(lastRequestRow()).toMatchObject({ status: 'success', tokens_in: 19, tokens_out: 13 })
  })
})

describe("a reasoning model's reasoning_content (Kimi, DeepSeek), an Anthropic client", () => {
  const thought = 'The user wants the weather; I should call the tool.'
  const toolCall = { id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }
  // Moonshot's rule in thinking mode: an assistant tool-call turn sent back without its reasoning_content is a 400.
  const kimi = (streamed: boolean) => (body: Record<string, any>) => {
    const assistant = body.messages.find((m: { role: string }) => m.role === 'assistant')
    if (assistant && !assistant.reasoning_content) {
      return Response.json({ error: { message: 'thinking is enabled but reasoning_content is missing in assistant tool call message at index 1', type: 'invalid_request_error' } }, { status: 400 })
    }
    if (assistant) return Response.json({ id: 'c2', object: 'chat.completion', created: 1, model: 'kimi', choices: [{ index: 0, message: { role: 'assistant', content: 'Sunny.' }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } })
    if (!streamed) {
      return Response.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'kimi', choices: [{ index: 0, message: { role: 'assistant', content: '', reasoning_content: thought, tool_calls: [toolCall] }, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 5, completion_tokens: 9, total_tokens: 14 } })
    }
    return sse([
      oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', reasoning_content: thought.slice(0, 10) }, finish_reason: null }] }),
      oa({ ...chunk, choices: [{ index: 0, delta: { reasoning_content: thought.slice(10) }, finish_reason: null }] }),
      oa({ ...chunk, choices: [{ index: 0, delta: { tool_calls: [{ index: 0, ...toolCall }] }, finish_reason: null }] }),
      oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'tool_calls' }] }),
      'data: [DONE]\n\n',
    ])
  }

  for (const streamed of [false, true]) {
    test(`reaches the client as a thinking block, and goes back to that provider as reasoning_content in the next turn (${streamed ? 'streamed' : 'whole'})`, async () => {
      handler = kimi(streamed)
      const first = streamed
        ? await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
        : await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
      expect(first.content[0]).toEqual({ type: 'thinking', thinking: thought, signature: 'witness.reasoning_content.oai' })
      expect(first.content[1]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'Paris' } })
      const toolUse = first.content[1] as { id: string }
      const history = [...ask, { role: 'assistant' as const, content: first.content }, { role: 'user' as const, content: [{ type: 'tool_result' as const, tool_use_id: toolUse.id, content: '18 C' }] }]
      const second = await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: history as never })
      expect(second.content as unknown[]).toEqual([{ type: 'text', text: 'Sunny.' }])
      expect(received.at(-1)!.messages[1]).toMatchObject({ role: 'assistant', reasoning_content: thought })

      // The same history falling back to Anthropic: witness's thinking block is left out (its signature would be refused).
      handler = () => Response.json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Sunny.' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 9, output_tokens: 2 } })
      await anthropic().messages.create({ model: 'a', max_tokens: 100, messages: history as never })
      expect(received.at(-1)!.messages[1].content.map((b: { type: string }) => b.type)).toEqual(['tool_use'])
      // And to another OpenAI-compatible provider, without reasoning_content (a strict API refuses the field).
      handler = () => Response.json({ id: 'c3', object: 'chat.completion', created: 1, model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Sunny.' }, finish_reason: 'stop' }] })
      await anthropic().messages.create({ model: 'strict', max_tokens: 100, messages: history as never })
      expect(received.at(-1)!.messages[1]).not.toHaveProperty('reasoning_content')
    })
  }
})

describe("reasoning sent as `reasoning` (vLLM, OpenRouter, Ollama, Groq), an Anthropic client", () => {
  for (const streamed of [false, true]) {
    test(`reaches the client as a thinking block, and goes back to that provider as reasoning, unless its config says send_reasoning: false (${streamed ? 'streamed' : 'whole'})`, async () => {
      const thought = 'The user greets me; I greet back.'
      handler = () =>
        streamed
          ? sse([
              oa({ ...chunk, choices: [{ index: 0, delta: { role: 'assistant', reasoning: thought }, finish_reason: null }] }),
              oa({ ...chunk, choices: [{ index: 0, delta: { content: 'Hello!' }, finish_reason: null }] }),
              oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
              'data: [DONE]\n\n',
            ])
          : Response.json({ id: 'c1', object: 'chat.completion', created: 1, model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!', reasoning: thought }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 } })
      const first = streamed
        ? await anthropic().messages.stream({ model: 'o', max_tokens: 100, messages: ask }).finalMessage()
        : await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: ask })
      expect(first.content[0]).toEqual({ type: 'thinking', thinking: thought, signature: 'witness.reasoning.oai' })
      const answer = handler
      handler = () => Response.json({ id: 'c2', object: 'chat.completion', created: 1, model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Fine.' }, finish_reason: 'stop' }] })
      const history = [...ask, { role: 'assistant' as const, content: first.content }, { role: 'user' as const, content: 'and you?' }]
      await anthropic().messages.create({ model: 'o', max_tokens: 100, messages: history as never })
      expect(received.at(-1)!.messages[1]).toEqual({ role: 'assistant', content: 'Hello!', reasoning: thought })
      // A provider that refuses the field (Groq) is configured so: its own reasoning does not go back to it.
      handler = answer
      const quiet = streamed
        ? await anthropic().messages.stream({ model: 'quiet', max_tokens: 100, messages: ask }).finalMessage()
        : await anthropic().messages.create({ model: 'quiet', max_tokens: 100, messages: ask })
      expect(quiet.content[0]).toMatchObject({ type: 'thinking', signature: 'witness.reasoning.quiet' })
      handler = () => Response.json({ id: 'c3', object: 'chat.completion', created: 1, model: 'x', choices: [{ index: 0, message: { role: 'assistant', content: 'Fine.' }, finish_reason: 'stop' }] })
      await anthropic().messages.create({ model: 'quiet', max_tokens: 100, messages: [...ask, { role: 'assistant' as const, content: quiet.content }, { role: 'user' as const, content: 'and you?' }] as never })
      expect(received.at(-1)!.messages[1]).toEqual({ role: 'assistant', content: 'Hello!' })
      // Falling back to Anthropic, witness's thinking block is left out as well.
      handler = () => Response.json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Fine.' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 9, output_tokens: 2 } })
      await anthropic().messages.create({ model: 'a', max_tokens: 100, messages: history as never })
      expect(received.at(-1)!.messages[1].content.map((b: { type: string }) => b.type)).toEqual(['text'])
    })
  }
})

describe('an OpenAI-compatible provider, an OpenAI client', () => {
  test("an answer's id and model are stored (and passed on) without control characters, as an upstream's error text is", async () => {
    handler = () => Response.json({ id: 'chatcmpl-\u001b]0;pwned\u0007', object: 'chat.completion', created: 1, model: 'gpt\u001b[2J-x', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
    const done = await openai().chat.completions.create({ model: 'o', messages: ask })
    expect([done.id, done.model]).toEqual(['chatcmpl-\ufffd]0;pwned\ufffd', 'gpt\ufffd[2J-x'])
    expect(readMeta(w.dbPath).at(-1)).toMatchObject({ response_id: 'chatcmpl-\ufffd]0;pwned\ufffd', served_model: 'gpt\ufffd[2J-x' })
  })

  test('an event whose data spans several lines reaches the client as several data: lines, which the SDK parses', async () => {
    handler = () =>
      sse([
        `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,\ndata: "model":"gpt-x","choices":[{"index":0,"delta":{"role":"assistant","content":"hello"},"finish_reason":null}]}\n\n`,
        oa({ ...chunk, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
        'data: [DONE]\n\n',
      ])
    const done = await openai().chat.completions.stream({ model: 'o', messages: ask }).finalChatCompletion()
    expect(done.choices[0]!.message.content).toBe('hello')
    expect(lastRequestRow().status).toBe('success')
  })
})
